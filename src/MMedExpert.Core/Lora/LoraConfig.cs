namespace MMedExpert.Core.Lora;

/// <summary>
/// The settings of one adapter (PEFT's LoraConfig subset that changes the math). Scale = alpha / r, or alpha / sqrt(r)
/// with rank-stabilized LoRA.
/// </summary>
public sealed record LoraConfig
{
    public int R { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    /// <summary>Dropout probability on the adapter's input, in training mode only.</summary>
    public double Dropout { get; init; } = 0.05;
    public bool UseRsLora { get; init; }
    public TargetModules TargetModules { get; init; } = TargetModules.LanguageModelDefault;
    /// <summary>Also adapt the vision tower's matching layers (paths under <c>visual.</c>/<c>model.visual.</c>).</summary>
    public bool IncludeVision { get; init; }
    public LoraInit Init { get; init; } = LoraInit.Kaiming;
    public string? BaseModelNameOrPath { get; init; }
    public string TaskType { get; init; } = "CAUSAL_LM";

    public double Scale => UseRsLora ? Alpha / Math.Sqrt(R) : Alpha / R;

    /// <summary>True when the module at <paramref name="path"/> gets this adapter.</summary>
    public bool Targets(string path) => TargetModules.Matches(path) && (IncludeVision || !TargetModules.IsVision(path));

    public void Validate()
    {
        if (R <= 0) throw new LoraException($"LoRA r must be positive (got {R})");
        if (!double.IsFinite(Alpha) || Alpha == 0) throw new LoraException($"LoRA alpha must be finite and non-zero (got {Alpha})");
        if (!(Dropout >= 0 && Dropout < 1)) throw new LoraException($"LoRA dropout must be in [0, 1) (got {Dropout})");
    }
}
