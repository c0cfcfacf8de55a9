using MMedExpert.Data.Schema;

namespace MMedExpert.Data.MedSynth;

/// <summary>
/// The latent case of an item: the four findings the generator asked for and the diagnosis they give. The report
/// compares them with what is read back from the written text and the drawn scene.
/// </summary>
public sealed record LatentCase(string Specialty, int Diagnosis, bool Image1, bool Clinical1, bool Image2, bool Clinical2);

/// <summary>One generated item with its latent case, the findings read from the drawn scene, and the PNG bytes.</summary>
public sealed record GeneratedItem(MedItem Item, LatentCase Latent, bool SceneImage1, bool SceneImage2, byte[] Png);
