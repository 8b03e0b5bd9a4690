#if canImport(Glibc)
import Glibc
#endif
internal import CLinux

/// What a system call returned: its value, or the errno it failed with.
enum CallResult<T> {
    case success(T)
    case failure(Int32)
}

/// The one place that retries a system call interrupted by a signal.
@inline(__always)
func retryingEINTR<T: FixedWidthInteger>(_ body: () -> T) -> CallResult<T> {
    while true {
        let r = body()
        if r >= 0 { return .success(r) }
        let e = errno
        if e != EINTR { return .failure(e) }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws `DiskVaultError` (the standard one only rethrows untyped).
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(DiskVaultError) -> R) throws(DiskVaultError) -> R {
        try withUnsafeBytes { b in Result { () throws(DiskVaultError) -> R in try body(b) } }.get()
    }

    mutating func withMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws(DiskVaultError) -> R) throws(DiskVaultError) -> R {
        try withUnsafeMutableBytes { b in Result { () throws(DiskVaultError) -> R in try body(b) } }.get()
    }
}

/// Runs a system call on `path`; a failure becomes a `DiskVaultError` naming the call, the path and `doing`.
@inline(__always)
func sys<T: FixedWidthInteger>(
    _ name: String, path: String?, _ doing: @autoclosure () -> String, _ body: () -> T
) throws(DiskVaultError) -> T {
    switch retryingEINTR(body) {
    case .success(let r): return r
    case .failure(let e): throw DiskVaultError.system(name, e, path: path, doing: doing())
    }
}
