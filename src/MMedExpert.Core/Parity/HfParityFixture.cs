using MMedExpert.Core.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Parity;

/// <summary>
/// A reference computed by Hugging Face transformers (shared/fixtures/hf-parity/&lt;name&gt;/, see its README):
/// <c>checkpoint/</c> in the Hub layout, <c>image.png</c>, <c>inputs.safetensors</c> (input_ids, pixel_values,
/// image_grid_thw, and the reference's position_ids and rope_deltas) and <c>outputs.safetensors</c> (logits,
/// greedy_ids). Every tensor is checked for presence and shape on load, so a broken fixture fails by file and tensor name.
/// </summary>
public sealed class HfParityFixture : IDisposable
{
    public const string CheckpointDir = "checkpoint", ImageFile = "image.png", InputsFile = "inputs.safetensors", OutputsFile = "outputs.safetensors";

    public string Dir { get; }
    public string Checkpoint => Path.Combine(Dir, CheckpointDir);
    public string Image => Path.Combine(Dir, ImageFile);
    public string InputsPath => Path.Combine(Dir, InputsFile);
    public string OutputsPath => Path.Combine(Dir, OutputsFile);

    /// <summary>[1, seq] int64.</summary>
    public Tensor InputIds { get; }
    /// <summary>[1, seq] int64, or null when the fixture has no attention_mask (no padding).</summary>
    public Tensor? AttentionMask { get; }
    /// <summary>[patches, 1176] float32: what the reference processor made of <see cref="Image"/>.</summary>
    public Tensor PixelValues { get; }
    /// <summary>[images, 3] int64.</summary>
    public Tensor ImageGridThw { get; }
    /// <summary>[3, 1, seq] int64.</summary>
    public Tensor PositionIds { get; }
    /// <summary>[1] int64 (stored [1, 1] by transformers).</summary>
    public Tensor RopeDeltas { get; }
    /// <summary>[1, seq, vocab] float32.</summary>
    public Tensor Logits { get; }
    /// <summary>[1, new tokens] int64.</summary>
    public Tensor GreedyIds { get; }

    HfParityFixture(string dir, Dictionary<string, Tensor> t)
    {
        Dir = dir;
        InputIds = t["input_ids"];
        AttentionMask = t.GetValueOrDefault("attention_mask");
        PixelValues = t["pixel_values"];
        ImageGridThw = t["image_grid_thw"];
        PositionIds = t["position_ids"];
        RopeDeltas = t["rope_deltas"].reshape(-1);
        Logits = t["logits"];
        GreedyIds = t["greedy_ids"];
    }

    /// <summary>Reads and checks the fixture in <paramref name="dir"/>; <paramref name="vocabSize"/> is the checkpoint's.</summary>
    public static HfParityFixture Open(string dir, int vocabSize)
    {
        dir = Path.GetFullPath(dir);
        if (!Directory.Exists(dir)) throw new MmxException($"{dir}: parity fixture folder not found");
        foreach (var path in new[] { Path.Combine(dir, CheckpointDir) })
            if (!Directory.Exists(path)) throw new MmxException($"{path}: not found (a parity fixture holds {CheckpointDir}/, {ImageFile}, {InputsFile} and {OutputsFile})");
        foreach (var name in new[] { ImageFile, InputsFile, OutputsFile })
            if (!File.Exists(Path.Combine(dir, name))) throw new MmxException($"{Path.Combine(dir, name)}: not found (a parity fixture holds {CheckpointDir}/, {ImageFile}, {InputsFile} and {OutputsFile})");

        var tensors = new Dictionary<string, Tensor>();
        try
        {
            using var inputs = SafetensorsFile.Open(Path.Combine(dir, InputsFile));
            using var outputs = SafetensorsFile.Open(Path.Combine(dir, OutputsFile));
            var ids = Read(inputs, "input_ids", ScalarType.Int64, tensors);
            if (ids.dim() != 2 || ids.shape[0] != 1 || ids.shape[1] == 0)
                throw ShapeError(inputs, "input_ids", ids, "[1, seq]");
            long seq = ids.shape[1];
            if (inputs.Contains("attention_mask")) Expect(inputs, Read(inputs, "attention_mask", ScalarType.Int64, tensors), "attention_mask", 1, seq);
            var pixels = Read(inputs, "pixel_values", ScalarType.Float32, tensors);
            if (pixels.dim() != 2) throw ShapeError(inputs, "pixel_values", pixels, "[patches, channels·temporal·patch²]");
            var grid = Read(inputs, "image_grid_thw", ScalarType.Int64, tensors);
            if (grid.dim() != 2 || grid.shape[1] != 3) throw ShapeError(inputs, "image_grid_thw", grid, "[images, 3]");
            // transformers 4.50's fixture script keeps the rope index in inputs; accept it in either file.
            var ropeFile = inputs.Contains("position_ids") || !outputs.Contains("position_ids") ? inputs : outputs;
            Expect(ropeFile, Read(ropeFile, "position_ids", ScalarType.Int64, tensors), "position_ids", 3, 1, seq);
            var deltaFile = inputs.Contains("rope_deltas") || !outputs.Contains("rope_deltas") ? inputs : outputs;
            var deltas = Read(deltaFile, "rope_deltas", ScalarType.Int64, tensors);
            if (deltas.numel() != 1) throw ShapeError(deltaFile, "rope_deltas", deltas, "[1, 1]");
            Expect(outputs, Read(outputs, "logits", ScalarType.Float32, tensors), "logits", 1, seq, vocabSize);
            var greedy = Read(outputs, "greedy_ids", ScalarType.Int64, tensors);
            if (greedy.dim() != 2 || greedy.shape[0] != 1 || greedy.shape[1] == 0) throw ShapeError(outputs, "greedy_ids", greedy, "[1, new tokens]");
            return new HfParityFixture(dir, tensors);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    static Tensor Read(SafetensorsFile file, string name, ScalarType dtype, Dictionary<string, Tensor> into)
    {
        if (!file.Contains(name)) throw new SafetensorsException(file.Path, "missing (a parity fixture needs it)", name);
        var t = file.Load(name, dtype, copy: true);
        into[name] = t;
        return t;
    }

    static void Expect(SafetensorsFile file, Tensor t, string name, params long[] shape)
    {
        if (!t.shape.SequenceEqual(shape)) throw ShapeError(file, name, t, $"[{string.Join(", ", shape)}]");
    }

    static SafetensorsException ShapeError(SafetensorsFile file, string name, Tensor t, string expected) =>
        new(file.Path, $"has shape [{string.Join(", ", t.shape)}], expected {expected}", name);

    public void Dispose()
    {
        foreach (var t in new[] { InputIds, AttentionMask, PixelValues, ImageGridThw, PositionIds, RopeDeltas, Logits, GreedyIds }) t?.Dispose();
    }
}
