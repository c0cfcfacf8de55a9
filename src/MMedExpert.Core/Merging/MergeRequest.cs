using MMedExpert.Algebra.Merge;
using TorchSharp;

namespace MMedExpert.Core.Merging;

/// <summary>What to merge and where to write it.</summary>
/// <param name="ExpertDirs">PEFT adapter folders, one per expert.</param>
/// <param name="Config">Method and its parameters (the algebra's record). Empty Seeds are derived from
/// <paramref name="Seed"/> and each expert's name, so they travel with the expert when the list is reordered.</param>
/// <param name="OutDir">The output folder, written atomically (replaced only when complete).</param>
/// <param name="BaseDir">HF base checkpoint (file, index or folder). Needed for a merged model; for an adapter it is
/// only checked against (shapes).</param>
/// <param name="AsAdapter">Write a rank-<paramref name="Rank"/> PEFT adapter (truncated SVD) instead of a full model.</param>
/// <param name="OutputDType">dtype of a merged adapter's factors (default: the first expert's). A merged model keeps each
/// base tensor's dtype.</param>
public sealed record MergeRequest(
    IReadOnlyList<string> ExpertDirs,
    MergeConfig Config,
    string OutDir,
    string? BaseDir = null,
    bool AsAdapter = false,
    int Rank = 16,
    ulong Seed = 0,
    torch.ScalarType? OutputDType = null,
    long MaxShardBytes = 5L << 30);

/// <summary>Progress after each module: how many are done, of how many, and the one just finished.</summary>
public readonly record struct MergeProgress(int Done, int Total, string Module);

/// <summary>One merged module in merge.json.</summary>
public sealed record ModuleMergeReport(
    string Module,
    long[] Shape,
    int Experts,
    double ConflictScale,
    double MergedNorm,
    int? Rank,
    double? RelativeError);

/// <summary>What a merge did (also written as merge.json in the output folder).</summary>
public sealed record MergeSummary(
    string OutDir,
    string Output,
    string Method,
    string[] Experts,
    ulong[] Seeds,
    double Density,
    double Lambda,
    double DropRate,
    double ConflictStrength,
    int Modules,
    int? Rank,
    double? MeanRelativeError,
    double? MaxRelativeError,
    double Seconds,
    ModuleMergeReport[] PerModule);
