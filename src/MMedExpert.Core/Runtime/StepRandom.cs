using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Runtime;

/// <summary>
/// The random stream of the current training step, for code inside the model (LoRA dropout) that must be exactly
/// reproducible on resume. The trainer sets a seed per step (derived from the run seed and the step number) for the
/// duration of the step, on its own thread; generators are created per device on first use. Outside a step (or on
/// another thread) <see cref="For"/> returns null and callers fall back to torch's default generator. Separate from the
/// default generator so that other code drawing random numbers (another thread, a data loader) cannot shift the stream.
/// </summary>
public static class StepRandom
{
    [ThreadStatic] static Scope? current;

    /// <summary>Makes <paramref name="seed"/> the current step's seed until the returned scope is disposed.</summary>
    public static IDisposable Begin(long seed)
    {
        var scope = new Scope(seed, current);
        current = scope;
        return scope;
    }

    /// <summary>The current step's generator for <paramref name="device"/>, or null outside a step.</summary>
    public static Generator? For(Device device) => current?.Generator(device);

    sealed class Scope : IDisposable
    {
        readonly long seed;
        readonly Scope? previous;
        readonly Dictionary<string, Generator> generators = new();

        public Scope(long seed, Scope? previous)
        {
            this.seed = seed;
            this.previous = previous;
        }

        public Generator Generator(Device device)
        {
            string key = device.ToString();
            if (!generators.TryGetValue(key, out var g))
            {
                g = new Generator((ulong)Seeds.Derive(seed, key), device);
                generators[key] = g;
            }
            return g;
        }

        public void Dispose()
        {
            if (current == this) current = previous;
            foreach (var g in generators.Values) g.Dispose();
            generators.Clear();
        }
    }
}
