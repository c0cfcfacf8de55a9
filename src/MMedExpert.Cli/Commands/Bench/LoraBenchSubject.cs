using MMedExpert.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Cli.Commands.Bench;

/// <summary>
/// What `mmx bench lora` trains: a model whose linear layers are AdaptableLinears, and the loss of synthetic batch i
/// (same batches for LoRA and full fine-tuning). A preset builds one per measured process.
/// </summary>
/// <param name="Model">The model (LoRA attaches to its AdaptableLinears by module path; full fine-tuning trains all its parameters).</param>
/// <param name="Loss">Scalar training loss of synthetic batch i (forward in train mode).</param>
/// <param name="TokensPerBatch">Tokens in one batch, for tokens/s.</param>
/// <param name="Description">Sizes, for the report.</param>
public sealed record LoraBenchSubject(nn.Module Model, Func<long, Tensor> Loss, long TokensPerBatch, string Description) : IDisposable
{
    public void Dispose() => Model.Dispose();
}

/// <summary>Batch shape asked for on the command line.</summary>
public sealed record LoraBenchShape(int Batch, int Sequence, long Seed);

/// <summary>
/// The presets `mmx bench lora --preset NAME` knows. "toy" is <see cref="ToyCausalLm"/> at a size where matmuls
/// dominate; the real model's presets ("small", ...) are added here when the model lands.
/// </summary>
public static class LoraBenchSubjects
{
    public static readonly IReadOnlyDictionary<string, Func<LoraBenchShape, LoraBenchSubject>> Presets =
        new Dictionary<string, Func<LoraBenchShape, LoraBenchSubject>>
        {
            ["toy"] = Toy,
        };

    static LoraBenchSubject Toy(LoraBenchShape shape)
    {
        var config = new ToyCausalLmConfig(Vocab: 2048, Hidden: 256, Layers: 4, Heads: 8, KvHeads: 4, Intermediate: 704);
        var model = new ToyCausalLm(config, shape.Seed);
        model.train();
        Tensor Loss(long i)
        {
            using var gen = new Generator((ulong)MMedExpert.Core.Runtime.Seeds.Derive(shape.Seed, i));
            using var ids = randint(0, config.Vocab, new long[] { shape.Batch, shape.Sequence }, generator: gen);
            return model.Loss(ids);
        }
        return new LoraBenchSubject(model, Loss, (long)shape.Batch * shape.Sequence,
            $"ToyCausalLm hidden {config.Hidden}, {config.Layers} layers, vocab {config.Vocab}, intermediate {config.Intermediate}");
    }
}
