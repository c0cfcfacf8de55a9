// Marks one symbol-version requirement of an ELF shared library as WEAK (VER_FLG_WEAK in .gnu.version_r).
//
// Why: TorchSharp 0.107's libLibTorchSharp.so asks for GLIBCXX_3.4.32 (libstdc++ of GCC 13+), but Debian 12 ships
// libstdc++ up to GLIBCXX_3.4.30. The only symbol behind that version is std::ios_base_library_init(), which no
// relocation uses, so a weak requirement lets the dynamic loader accept the older libstdc++ and the library works.
//
// This file is compiled twice: into MMedExpert.Core (as a plain library, MMX_LIBRARY defined) so tests and `mmx info`
// can read and check the flags, and by MSBuild's RoslynCodeTaskFactory (Directory.Build.targets), where the task class
// at the bottom patches the copy the build places under runtimes/linux-x64/native/ (never the NuGet cache).
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace MMedExpert.Core.Native
{
    /// <summary>One needed version (Vernaux entry) of an ELF file: the library it comes from, its name and its flags.</summary>
    public sealed class ElfVersionNeed
    {
        public ElfVersionNeed(string file, string version, ushort flags, long flagsOffset)
        { File = file; Version = version; Flags = flags; FlagsOffset = flagsOffset; }
        public string File { get; }
        public string Version { get; }
        public ushort Flags { get; }
        /// <summary>Byte offset of vna_flags in the file.</summary>
        public long FlagsOffset { get; }
        public const ushort WeakFlag = 0x2;
        public bool IsWeak => (Flags & WeakFlag) != 0;
    }

    public enum ElfPatchOutcome { Patched, AlreadyWeak, NotRequired, SystemProvidesVersion }

    public static class ElfWeakVersion
    {
        const uint ShtGnuVerneed = 0x6ffffffe;

        /// <summary>Reads every version requirement (.gnu.version_r) of a 64-bit little-endian ELF file.</summary>
        public static List<ElfVersionNeed> ReadVersionNeeds(string path)
        {
            byte[] elf = File.ReadAllBytes(path);
            return ReadVersionNeeds(elf, path);
        }

        static List<ElfVersionNeed> ReadVersionNeeds(byte[] elf, string path)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"{path}: not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"{path}: only 64-bit little-endian ELF is supported");

            long shoff = (long)U64(elf, 0x28, path);
            int shentsize = U16(elf, 0x3A, path);
            int shnum = U16(elf, 0x3C, path);
            var result = new List<ElfVersionNeed>();
            for (int s = 0; s < shnum; s++)
            {
                long sh = shoff + (long)s * shentsize;
                if (U32(elf, sh + 4, path) != ShtGnuVerneed) continue;
                long offset = (long)U64(elf, sh + 24, path);
                uint link = U32(elf, sh + 40, path);
                uint count = U32(elf, sh + 44, path);
                long strtab = (long)U64(elf, shoff + (long)link * shentsize + 24, path);

                long need = offset;
                for (uint n = 0; n < count; n++)
                {
                    int auxCount = U16(elf, need + 2, path);
                    string file = CString(elf, strtab + U32(elf, need + 4, path), path);
                    long aux = need + U32(elf, need + 8, path);
                    for (int a = 0; a < auxCount; a++)
                    {
                        ushort flags = U16(elf, aux + 4, path);
                        string name = CString(elf, strtab + U32(elf, aux + 8, path), path);
                        result.Add(new ElfVersionNeed(file, name, flags, aux + 4));
                        aux += U32(elf, aux + 12, path);
                    }
                    need += U32(elf, need + 12, path);
                }
            }
            return result;
        }

        /// <summary>
        /// Sets VER_FLG_WEAK on the requirement of <paramref name="version"/>. Idempotent; writes a temp file and renames it
        /// over the original (so a hard link into a package cache is never modified in place).
        /// </summary>
        public static ElfPatchOutcome MarkWeak(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            ElfVersionNeed? target = null;
            foreach (var need in ReadVersionNeeds(elf, path))
                if (need.Version == version) { target = need; break; }
            if (target is null) return ElfPatchOutcome.NotRequired;
            if (target.IsWeak) return ElfPatchOutcome.AlreadyWeak;

            ushort flags = (ushort)(target.Flags | ElfVersionNeed.WeakFlag);
            elf[target.FlagsOffset] = (byte)(flags & 0xff);
            elf[target.FlagsOffset + 1] = (byte)(flags >> 8);
            string tmp = path + ".mmx-patch.tmp";
            // Code here also compiles against netstandard2.0 (MSBuild's inline task), hence the plain File API.
            File.Copy(path, tmp, true); // keeps the file mode
            File.WriteAllBytes(tmp, elf);
            try
            {
                File.Delete(path);
                File.Move(tmp, path);
            }
            finally { if (File.Exists(tmp)) File.Delete(tmp); }
            return ElfPatchOutcome.Patched;
        }

        /// <summary>Where the system's libstdc++ lives on common Linux layouts (null when none is found).</summary>
        public static string? FindSystemLibStdCxx()
        {
            string[] candidates =
            {
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
                "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/libstdc++.so.6",
            };
            foreach (var c in candidates) if (File.Exists(c)) return c;
            return null;
        }

        /// <summary>True when the library defines the version string (e.g. GLIBCXX_3.4.32) in its dynamic string table.</summary>
        public static bool LibraryDefinesVersion(string libraryPath, string version)
        {
            byte[] bytes = File.ReadAllBytes(libraryPath);
            byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
            for (int i = 0; i + needle.Length <= bytes.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && bytes[i + j] == needle[j]) j++;
                if (j == needle.Length) return true;
            }
            return false;
        }

        /// <summary>Patches only where needed: skipped when the system libstdc++ already provides the version.</summary>
        public static ElfPatchOutcome PatchIfSystemLacks(string path, string version)
        {
            string? system = FindSystemLibStdCxx();
            if (system != null && LibraryDefinesVersion(system, version)) return ElfPatchOutcome.SystemProvidesVersion;
            return MarkWeak(path, version);
        }

        static void Check(byte[] b, long at, int size, string path)
        {
            if (at < 0 || at + size > b.Length) throw new InvalidDataException($"{path}: ELF structure points outside the file (offset {at})");
        }
        static ushort U16(byte[] b, long at, string p) { Check(b, at, 2, p); return BitConverter.ToUInt16(b, (int)at); }
        static uint U32(byte[] b, long at, string p) { Check(b, at, 4, p); return BitConverter.ToUInt32(b, (int)at); }
        static ulong U64(byte[] b, long at, string p) { Check(b, at, 8, p); return BitConverter.ToUInt64(b, (int)at); }
        static string CString(byte[] b, long at, string p)
        {
            Check(b, at, 1, p);
            int end = (int)at;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)at, end - (int)at);
        }
    }
}

#if !MMX_LIBRARY
/// <summary>MSBuild task: marks <see cref="Version"/> weak in each file, unless the system libstdc++ provides it.</summary>
public class MarkElfVersionWeak : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required] public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = System.Array.Empty<Microsoft.Build.Framework.ITaskItem>();
    [Microsoft.Build.Framework.Required] public string Version { get; set; } = "";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            if (!System.IO.File.Exists(path)) continue;
            try
            {
                var outcome = MMedExpert.Core.Native.ElfWeakVersion.PatchIfSystemLacks(path, Version);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal, $"{path}: {Version} -> {outcome}");
            }
            catch (System.Exception e)
            {
                Log.LogError($"{path}: cannot mark {Version} weak: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }
}
#endif
