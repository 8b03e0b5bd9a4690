internal import CLinux
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A connection to a running qemu's QMP monitor (a unix socket): the greeting, `qmp_capabilities`, then one
/// command at a time, each answered by its `return` or `error`; events that arrive between are kept for
/// `waitForEvent`. Every wait is bounded by `timeout`, so a qemu that stops answering is an error, never a hang;
/// a qemu that goes away (the socket closes) is a clear error naming the socket.
public final class QMPClient: @unchecked Sendable {
    public let socketPath: String
    /// The qemu process at the other end (SO_PEERCRED) and its start time: the same pair later means the same
    /// qemu, so that what it keeps in memory (a dirty bitmap) is still the one this process made.
    public let qemuPID: Int32
    public let qemuStart: UInt64
    /// qemu's version, from the greeting ("7.2.22").
    public private(set) var version = ""
    private var fd: Int32
    private var buffer: [UInt8] = []
    /// Bytes of `buffer` already searched for a newline (each byte is searched once).
    private var searched = 0
    private var events: [[String: Any]] = []
    private var nextID = 0
    let timeout: Int32

    /// No message from qemu is larger: a bigger line is refused, never buffered without end.
    static let maxMessage = 16 << 20
    public static let defaultTimeout: Int32 = 60_000

    /// A QMP command qemu refused: its error class and description.
    public struct CommandError: Error {
        public var command: String
        public var errorClass: String
        public var desc: String
    }

    public init(socket path: String, timeout: Int32 = defaultTimeout) throws(DiskVaultError) {
        socketPath = path
        self.timeout = timeout
        let fd = dv_unix_connect(path)
        guard fd >= 0 else {
            let e = errno
            switch e {
            case ENOENT: throw DiskVaultError(.notFound, "no QMP socket there (is the VM running with -qmp unix:PATH,server=on,wait=off?)", path: path)
            case ECONNREFUSED: throw DiskVaultError(.io, "nothing listens on the QMP socket (the VM is gone, or another client holds its only connection)", path: path)
            case EACCES, EPERM: throw DiskVaultError(.permission, "cannot connect to the QMP socket (permission denied)", path: path)
            default: throw DiskVaultError.system("connect", e, path: path, doing: "cannot connect to the QMP socket")
            }
        }
        self.fd = fd
        let pid = dv_peer_pid(fd)
        qemuPID = pid
        qemuStart = pid > 0 ? ProcessLiveness.startTicks(of: pid) ?? 0 : 0
        do throws(DiskVaultError) {
            let greeting = try readMessage()
            guard let qmp = greeting["QMP"] as? [String: Any] else {
                throw DiskVaultError(.io, "the socket does not speak QMP (its first message is no QMP greeting)", path: path)
            }
            let v = ((qmp["version"] as? [String: Any])?["qemu"] as? [String: Any]) ?? [:]
            version = "\(v["major"] as? Int ?? 0).\(v["minor"] as? Int ?? 0).\(v["micro"] as? Int ?? 0)"
            _ = try execute("qmp_capabilities")
        } catch {
            Glibc.close(fd)
            self.fd = -1
            throw error
        }
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func gone(_ why: String) -> DiskVaultError {
        DiskVaultError(.io, "qemu's QMP connection \(why) (the VM went away?)", path: socketPath)
    }

    /// The next complete message: a JSON object on one line.
    private func readMessage() throws(DiskVaultError) -> [String: Any] {
        while true {
            if let nl = buffer[searched...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                searched = 0
                if line.allSatisfy({ $0 == 13 || $0 == 32 }) { continue }
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw DiskVaultError(.io, "qemu sent a QMP message that is not a JSON object", path: socketPath)
                }
                return object
            }
            guard buffer.count < Self.maxMessage else {
                throw DiskVaultError(.io, "qemu sent a QMP message larger than \(Self.maxMessage >> 20) MiB", path: socketPath)
            }
            searched = buffer.count
            guard fd >= 0 else { throw gone("is closed") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, timeout)
            if r < 0 {
                if errno == EINTR { continue }
                throw DiskVaultError.system("poll", errno, path: socketPath, doing: "cannot wait for qemu's QMP answer")
            }
            if r == 0 {
                throw DiskVaultError(.io, "qemu did not answer on its QMP socket in \(timeout / 1000) s (a monitor serves one client at a time: another backup of this VM, or libvirt, may hold it)", path: socketPath)
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw gone("failed (\(String(cString: strerror(errno))))")
            }
            if n == 0 { throw gone("closed") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    private func send(_ object: [String: Any]) throws(DiskVaultError) {
        guard fd >= 0 else { throw gone("is closed") }
        let data: Data
        do { data = try JSONSerialization.data(withJSONObject: object) } catch {
            throw DiskVaultError(.usage, "a QMP command could not be encoded (\(error))")
        }
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw gone("failed (\(String(cString: strerror(errno))))")
            }
            done += n
        }
    }

    /// Runs `command` and returns its `return` value; a refusal is an error naming the command and qemu's reason.
    @discardableResult
    public func execute(_ command: String, _ arguments: [String: Any]? = nil) throws(DiskVaultError) -> Any {
        switch try attempt(command, arguments) {
        case .success(let value): return value
        case .failure(let e):
            throw DiskVaultError(.io, "qemu refused \(command): \(e.desc)", path: socketPath)
        }
    }

    /// Runs `command`: its `return` value, or qemu's refusal as a value (for callers to which some refusals are
    /// expected, such as removing what is already gone).
    public func attempt(_ command: String, _ arguments: [String: Any]? = nil) throws(DiskVaultError) -> Result<Any, CommandError> {
        nextID += 1
        let id = "dv-\(nextID)"
        var message: [String: Any] = ["execute": command, "id": id]
        if let arguments { message["arguments"] = arguments }
        try send(message)
        while true {
            let reply = try readMessage()
            if reply["event"] != nil {
                if events.count < 4096 { events.append(reply) }
                continue
            }
            // A reply to another id (none is sent) or an untagged error (a command qemu could not parse).
            guard reply["id"] as? String == id else {
                if let e = reply["error"] as? [String: Any] {
                    return .failure(CommandError(command: command, errorClass: e["class"] as? String ?? "", desc: e["desc"] as? String ?? "unknown error"))
                }
                continue
            }
            if let e = reply["error"] as? [String: Any] {
                return .failure(CommandError(command: command, errorClass: e["class"] as? String ?? "", desc: e["desc"] as? String ?? "unknown error"))
            }
            return .success(reply["return"] ?? [String: Any]())
        }
    }

    /// Waits for the event `name` whose data matches `where` (kept ones first, then as they arrive).
    public func waitForEvent(_ name: String, where match: ([String: Any]) -> Bool = { _ in true }) throws(DiskVaultError) -> [String: Any] {
        while true {
            if let i = events.firstIndex(where: { $0["event"] as? String == name && match($0["data"] as? [String: Any] ?? [:]) }) {
                return events.remove(at: i)
            }
            let message = try readMessage()
            guard message["event"] != nil else { continue }
            if message["event"] as? String == name && match(message["data"] as? [String: Any] ?? [:]) { return message }
            if events.count < 4096 { events.append(message) }
        }
    }
}
