namespace MMedExpert.Core.Lora;

/// <summary>
/// How a new adapter's factors A (r×in) and B (out×r) start: the "diverse initialization" of DSA gives each specialty
/// expert its own starting point.
/// </summary>
public enum LoraInit
{
    /// <summary>PEFT's default (<c>init_lora_weights = true</c>): A Kaiming-uniform like nn.Linear, B = 0.</summary>
    Kaiming,
    /// <summary>PEFT's "gaussian": A ~ N(0, σ = 1/r), B = 0.</summary>
    Gaussian,
    /// <summary>
    /// PiSSA: W = U·S·Vᵀ, A = sqrt(S_r/scale)·V_rᵀ, B = U_r·sqrt(S_r/scale); the effective base is the residual
    /// W − scale·B₀A₀ (base-changing).
    /// </summary>
    PiSSA,
    /// <summary>OLoRA: W = Q·R, A = R_r (first r rows), B = Q_r (first r columns); effective base W − scale·B₀A₀.</summary>
    OLoRA,
    /// <summary>
    /// Seeded random: both factors nn.Linear-style random (PEFT's <c>init_lora_weights = false</c>), with the effective
    /// base W − scale·B₀A₀ so that the model's function is unchanged at initialization (base-changing).
    /// </summary>
    Random,
}

public static class LoraInits
{
    /// <summary>
    /// True for the inits whose adapter is non-zero at the start: they are paired with the residual base
    /// W − scale·B₀A₀, recorded as the frozen factors B₀, A₀ (see <see cref="LoraWeights"/>).
    /// </summary>
    public static bool ChangesBase(this LoraInit init) => init is LoraInit.PiSSA or LoraInit.OLoRA or LoraInit.Random;

    /// <summary>The name used on the command line and in run configs.</summary>
    public static string Name(this LoraInit init) => init switch
    {
        LoraInit.Kaiming => "kaiming",
        LoraInit.Gaussian => "gaussian",
        LoraInit.PiSSA => "pissa",
        LoraInit.OLoRA => "olora",
        LoraInit.Random => "random",
        _ => throw new ArgumentOutOfRangeException(nameof(init), init, null),
    };

    public static IReadOnlyList<string> Names { get; } = Enum.GetValues<LoraInit>().Select(i => i.Name()).ToList();

    /// <summary>Parses a name (<see cref="Name"/>, case-insensitive; "default" and "true" mean Kaiming).</summary>
    public static LoraInit Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "kaiming" or "default" or "true" => LoraInit.Kaiming,
        "gaussian" => LoraInit.Gaussian,
        "pissa" => LoraInit.PiSSA,
        "olora" => LoraInit.OLoRA,
        "random" => LoraInit.Random,
        _ => throw new LoraException($"unknown LoRA initialization '{name}' (expected one of {string.Join(", ", Names)})"),
    };
}
