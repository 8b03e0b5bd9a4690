internal import CLinux

/// An anonymous in-memory file, so the fuzz harness feeds parsers through the same file interface as images.
public enum FuzzInput {
    public static func memfd() -> Int32 { dv_memfd("diskvault-fuzz") }
}
