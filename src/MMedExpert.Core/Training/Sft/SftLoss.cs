using MMedExpert.Core.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MMedExpert.Core.Training.Sft;

/// <summary>Next-token cross-entropy on the assistant's tokens only (the chat format's mask).</summary>
public static class SftLoss
{
    /// <summary>Mean cross-entropy over the loss positions of the batch; logits are computed only at those positions.</summary>
    public static Tensor Compute(Qwen25VLForConditionalGeneration model, TrainingBatch batch)
    {
        using var scope = NewDisposeScope();
        var device = model.Device;
        var (hidden, _) = model.Prefill(batch.InputIds.to(device), batch.AttentionMask.to(device), batch.PixelValues, batch.ImageGridThw);
        var positions = batch.LossMask.to(device);
        var targets = batch.InputIds.to(device).roll(-1, 1).masked_select(positions);
        var selected = hidden[positions];                  // [N, hidden]
        var logits = model.Logits(selected).to_type(ScalarType.Float32);
        return nn.functional.cross_entropy(logits, targets).MoveToOuterDisposeScope();
    }
}
