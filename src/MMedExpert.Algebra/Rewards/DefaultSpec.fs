namespace MMedExpert.Algebra.Rewards

open System.IO

/// The project's default guideline spec (Rewards/default-guidelines.json, embedded in the assembly): the four clinical
/// perspectives of MMedExpert-R1 as this project reads them (paper/gba.md).
module DefaultSpec =

    /// The resource name of the embedded JSON.
    [<Literal>]
    let ResourceName = "MMedExpert.Algebra.Rewards.default-guidelines.json"

    /// The embedded JSON text (to copy and edit: `mmx`/scripts write it out, change it, and load the copy).
    let json () : string =
        let assembly = typeof<GuidelineSpec>.Assembly
        use stream = assembly.GetManifestResourceStream ResourceName
        if isNull stream then raise (GuidelineSpecException("<embedded default>", "(resource)", sprintf "resource %s is missing from %s" ResourceName assembly.FullName))
        use reader = new StreamReader(stream)
        reader.ReadToEnd()

    /// The default spec, parsed and validated.
    let load () : GuidelineSpec = SpecJson.parse "<embedded default-guidelines.json>" (json ())
