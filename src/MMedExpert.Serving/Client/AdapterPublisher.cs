using System.Globalization;
using MMedExpert.Core.Lora;

namespace MMedExpert.Serving.Client;

/// <summary>
/// Publishes the adapter being trained to an endpoint before each step's rollouts: saves it as PEFT (atomically) to
/// <c>DIR/step-&lt;k&gt;/</c>, then unloads the previous version's name and loads the new folder under the same name
/// (vLLM's <c>/v1/unload_lora_adapter</c>, <c>/v1/load_lora_adapter</c>). The server reads the folder by its path, so it
/// must see the same filesystem (same machine, or a shared mount at the same path). The two newest folders are kept
/// (the server may reread the one it serves); older ones are deleted.
/// </summary>
public sealed class AdapterPublisher(OpenAiClient client, LoraAdapters lora, string adapter, string dir, string loraName)
{
    bool published;

    /// <summary>The name requests use to reach the published adapter.</summary>
    public string LoraName => loraName;

    public string StepDir(long step) => Path.GetFullPath(Path.Combine(dir, "step-" + step.ToString(CultureInfo.InvariantCulture)));

    public void Publish(long step)
    {
        string folder = StepDir(step);
        lora.Save(adapter, folder);
        try { client.UnloadLoraAdapterAsync(loraName).GetAwaiter().GetResult(); }
        // The first time, the name is normally unknown to the server (4xx); a leftover from an interrupted run is replaced.
        catch (EndpointException e) when (!published && e.IsClientError) { }
        client.LoadLoraAdapterAsync(loraName, folder).GetAwaiter().GetResult();
        published = true;
        foreach (var old in Directory.GetDirectories(dir, "step-*"))
            if (StepNumber(old) is { } k && k < step - 1) Directory.Delete(old, recursive: true);
    }

    static long? StepNumber(string path) =>
        long.TryParse(Path.GetFileName(path).AsSpan("step-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out long k) ? k : null;
}
