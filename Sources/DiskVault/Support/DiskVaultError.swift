#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call, and the errno it returned.
public struct SystemCallError: Error, Hashable, CustomStringConvertible, Sendable {
    public var systemCall: String
    public var errno: Int32

    public init(systemCall: String, errno: Int32) {
        self.systemCall = systemCall
        self.errno = errno
    }

    public var description: String {
        "'\(systemCall)' system call failed with '(\(errno)) \(String(cString: strerror(errno)))'"
    }
}

/// The one error type the engine throws: what failed, on which path, and why.
public struct DiskVaultError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The caller asked for something malformed (exit status 2).
        case usage
        case notFound
        case alreadyExists
        case notAVault
        case unsupported
        case corrupt
        case io
        case noSpace
        case permission
        case interrupted
        /// Another run holds a lock this one needs (exit status 1; run-due skips such a disk).
        case locked
    }

    public var code: Code
    public var message: String
    public var path: String?
    public var cause: SystemCallError?

    public init(_ code: Code, _ message: String, path: String? = nil, cause: SystemCallError? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.cause = cause
    }

    /// Classifies a failed system call on `path`.
    public static func system(_ call: String, _ errno: Int32, path: String?, doing message: String) -> DiskVaultError {
        let code: Code
        switch errno {
        case ENOENT: code = .notFound
        case EEXIST: code = .alreadyExists
        case ENOSPC, EDQUOT, EFBIG: code = .noSpace
        case EACCES, EPERM, EROFS: code = .permission
        default: code = .io
        }
        return DiskVaultError(code, message, path: path, cause: SystemCallError(systemCall: call, errno: errno))
    }

    public var description: String {
        var text = message
        if let path { text += ": \(path)" }
        if let cause {
            text += " (\(cause))"
        }
        return text
    }

    /// Exit status for the command line: 2 for usage, 1 for everything else.
    public var exitStatus: Int32 { code == .usage ? 2 : 1 }
}

/// An error from an untyped context as a `DiskVaultError` (already one, or wrapped).
func asDiskVaultError(_ error: any Error) -> DiskVaultError {
    (error as? DiskVaultError) ?? DiskVaultError(.io, "\(error)")
}
