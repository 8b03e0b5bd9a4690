internal import CNBD
internal import CLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Bytes of an image read by offset: an open file, or an NBD export. Header parsers, the layout reader, key
/// checks and backup read a source through this, whatever serves it.
public protocol ImageBytes: AnyObject, Sendable {
    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the image.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int
}

/// Where a restore writes a disk's bytes by offset: a file, or the NBD export of a new image.
public protocol ImageSink: AnyObject, Sendable {
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskVaultError)
}

extension FileDescriptor: ImageBytes, ImageSink {}

/// One connection to an NBD server through libnbd: the export's size, reads, writes, and which extents are zero
/// (the `base:allocation` meta context). Every call waits at most `timeout` for the server to make progress, so
/// a server that stops answering is an error, never a hang; every error names the export. One call at a time:
/// the handle is used under a lock.
public final class NBDClient: ImageBytes, ImageSink, @unchecked Sendable {
    /// What errors name: the URI, or the image a qemu-nbd this process started serves.
    public let name: String
    public let size: UInt64
    /// Whether the server answers `base:allocation`: without it every byte is read.
    public let reportsZeros: Bool
    public let isReadOnly: Bool
    /// The largest request the server takes (its advertised maximum block size, else 32 MiB).
    let maxRequest: Int
    private let handle: Mutex<Handle>
    /// Milliseconds without progress after which a call fails.
    let timeout: Int32
    /// The server process this connection started (0 when it connected to one that runs already).
    private let server: pid_t

    /// The most extents one block-status reply may add: a server that answers with millions of tiny extents
    /// is asked again from where the kept ones end, so memory stays bounded.
    static let extentLimit = 1 << 16
    public static let defaultTimeout: Int32 = 120_000

    private init(handle h: OpaquePointer, name: String, timeout: Int32, server: pid_t = 0) throws(DiskVaultError) {
        self.name = name
        self.server = server
        self.timeout = timeout
        let size = nbd_get_size(h)
        guard size >= 0 else {
            let e = Self.error(name, "cannot read the export's size")
            nbd_close(h)
            throw e
        }
        self.size = UInt64(size)
        reportsZeros = nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1
        isReadOnly = nbd_is_read_only(h) != 0
        let maximum = nbd_get_block_size(h, Int32(LIBNBD_SIZE_MAXIMUM))
        maxRequest = maximum >= 4096 ? Int(min(maximum, 32 << 20)) : 32 << 20
        handle = Mutex(Handle(pointer: h))
    }

    /// The libnbd handle; only ever used under `handle`'s lock.
    struct Handle: @unchecked Sendable {
        var pointer: OpaquePointer?
    }

    deinit { close() }

    /// The export at `uri` (nbd://HOST[:PORT]/NAME, nbd+unix:///NAME?socket=PATH, nbds://…); `contexts` are
    /// meta contexts asked for beside `base:allocation` (a dirty bitmap qemu exports: `qemu:dirty-bitmap:NAME`).
    public static func connect(uri: String, timeout: Int32 = defaultTimeout, contexts: [String] = []) throws(DiskVaultError) -> NBDClient {
        let h = try create(uri)
        for c in contexts { _ = nbd_add_meta_context(h, c) }
        guard nbd_aio_connect_uri(h, uri) == 0 else {
            let e = error(uri, "cannot connect")
            nbd_close(h)
            throw e
        }
        try waitConnected(h, name: uri, timeout: timeout)
        return try NBDClient(handle: h, name: uri, timeout: timeout)
    }

    /// Starts `argv` (a server such as qemu-nbd; argv[0] an absolute path) on a listening socket handed to it
    /// by systemd socket activation, with this process's connection already waiting in it, and connects. The
    /// server ends when the connection is closed; if this process dies, even by SIGKILL and even before the
    /// handshake, the kernel signals it (qemu-nbd whose one client vanished mid-handshake would otherwise wait
    /// for another forever).
    public static func launch(_ argv: [String], name: String, timeout: Int32 = defaultTimeout) throws(DiskVaultError) -> NBDClient {
        let program = argv.first ?? "the NBD server"
        var listening: Int32 = -1, client: Int32 = -1
        guard dv_activation_sockets(&listening, &client) == 0 else {
            throw DiskVaultError(.io, "cannot make a socket to start \(program) on: \(String(cString: strerror(errno)))", path: name)
        }
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        let pid = cArgs.withUnsafeMutableBufferPointer { dv_spawn_activated($0.baseAddress, listening) }
        let spawnError = errno
        Glibc.close(listening)
        guard pid > 0 else {
            Glibc.close(client)
            throw DiskVaultError(.io, "cannot start \(program): \(String(cString: strerror(spawnError)))", path: name)
        }
        let h: OpaquePointer
        do {
            h = try create(name)
        } catch {
            Glibc.close(client)
            _ = dv_wait_child(pid, 0)
            throw error
        }
        // libnbd owns the connected socket from here, and closes it with the handle.
        guard nbd_aio_connect_socket(h, client) == 0 else {
            let e = error(name, "cannot connect to \(program)")
            nbd_close(h)
            _ = dv_wait_child(pid, 0)
            throw e
        }
        do {
            try waitConnected(h, name: name, timeout: timeout)
            return try NBDClient(handle: h, name: name, timeout: timeout, server: pid)
        } catch {
            _ = dv_wait_child(pid, 0)
            throw error
        }
    }

    private static func create(_ name: String) throws(DiskVaultError) -> OpaquePointer {
        guard let h = nbd_create() else { throw error(name, "cannot create an NBD handle") }
        // base:allocation says which extents are holes or zeros; structured replies carry it.
        _ = nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION)
        _ = nbd_set_request_structured_replies(h, true)
        return h
    }

    private static func waitConnected(_ h: OpaquePointer, name: String, timeout: Int32) throws(DiskVaultError) {
        while nbd_aio_is_connecting(h) != 0 {
            let r = nbd_poll(h, timeout)
            if r < 0 { break }
            if r == 0 {
                nbd_close(h)
                throw DiskVaultError(.io, "NBD export \(name): the server did not complete its handshake in \(timeout / 1000) s")
            }
        }
        guard nbd_aio_is_ready(h) != 0 else {
            let e = error(name, "cannot connect")
            nbd_close(h)
            throw e
        }
    }

    /// libnbd's last error on this thread, with `what` and the export's name.
    static func error(_ name: String, _ what: String) -> DiskVaultError {
        let detail = nbd_get_error().map { String(cString: $0) } ?? "unknown error"
        let code: DiskVaultError.Code = nbd_get_errno() == EPERM || nbd_get_errno() == EACCES ? .permission : .io
        return DiskVaultError(code, "NBD export \(name): \(what): \(detail)")
    }

    /// Ends the connection (a server launched for it is stopped). Safe to call twice.
    public func close() {
        handle.withLock { h in
            guard let open = h.pointer else { return }
            _ = nbd_shutdown(open, 0)
            nbd_close(open)
            h.pointer = nil
            // A server started for this connection ends once it is closed; one that does not is killed.
            if server > 0 { _ = dv_wait_child(server, 60_000) }
        }
    }

    /// Runs one command started by `start` to its completion, polling with the timeout.
    private func run(_ what: String, _ start: (OpaquePointer) -> Int64) throws(DiskVaultError) {
        try handle.withLock { (held) throws(DiskVaultError) in
            guard let h = held.pointer else { throw DiskVaultError(.io, "NBD export \(name): \(what): the connection is closed") }
            let cookie = start(h)
            guard cookie >= 0 else { throw Self.error(name, what) }
            while true {
                let done = nbd_aio_command_completed(h, UInt64(cookie))
                if done == 1 { return }
                if done < 0 { throw Self.error(name, what) }
                let r = nbd_poll(h, timeout)
                if r < 0 { throw Self.error(name, what) }
                if r == 0 {
                    throw DiskVaultError(.io, "NBD export \(name): \(what): no answer from the server in \(timeout / 1000) s")
                }
            }
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int {
        guard offset < size else { return 0 }
        let total = Int(min(UInt64(buffer.count), size - offset))
        var done = 0
        while done < total {
            let n = min(total - done, maxRequest)
            let at = offset + UInt64(done)
            try run("cannot read \(n) bytes at byte \(at)") { h in
                nbd_aio_pread(h, buffer.baseAddress! + done, n, at, nbd_completion_callback(), 0)
            }
            done += n
        }
        return total
    }

    /// Writes `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskVaultError) {
        var done = 0
        while done < bytes.count {
            let n = min(bytes.count - done, maxRequest)
            let at = offset + UInt64(done)
            try run("cannot write \(n) bytes at byte \(at)") { h in
                nbd_aio_pwrite(h, bytes.baseAddress! + done, n, at, nbd_completion_callback(), 0)
            }
            done += n
        }
    }

    /// Asks the server to make what was written durable.
    public func flush() throws(DiskVaultError) {
        try run("cannot flush") { h in nbd_aio_flush(h, nbd_completion_callback(), 0) }
    }

    /// An extent as block status reports it: `zero` when it reads as zeros (a hole or zero clusters).
    public struct Extent: Equatable, Sendable {
        public var range: Range<UInt64>
        public var zero: Bool
    }

    /// Whether the server agreed to report the meta context `name`.
    public func offers(context name: String) -> Bool {
        handle.withLock { h in h.pointer.map { nbd_can_meta_context($0, name) == 1 } ?? false }
    }

    /// Collects one reply's extents of one meta context: checks them against the request and merges neighbours
    /// alike. An extent is `zero` when its flags have `flag` (NBD_STATE_ZERO; NBD_STATE_DIRTY for a bitmap).
    private final class ExtentCollector {
        let context: String
        let flag: UInt32
        let start: UInt64
        let end: UInt64
        var extents: [Extent] = []
        var position: UInt64
        var problem: String?
        var count = 0

        init(context: String, flag: UInt32, start: UInt64, end: UInt64) {
            self.context = context
            self.flag = flag
            self.start = start
            self.end = end
            position = start
        }

        func add(context: String, offset: UInt64, entries: UnsafeBufferPointer<UInt32>) {
            guard context == self.context else { return }
            guard problem == nil else { return }
            guard offset == start else {
                problem = "block status answered for byte \(offset), not the byte \(start) asked for"
                return
            }
            guard entries.count % 2 == 0 else {
                problem = "block status sent an odd number of fields"
                return
            }
            var i = 0
            while i < entries.count && position < end {
                let length = UInt64(entries[i]), flags = entries[i + 1]
                i += 2
                guard length > 0 else {
                    problem = "block status sent an extent of 0 bytes at byte \(position)"
                    return
                }
                guard count < NBDClient.extentLimit else { return }
                count += 1
                let stop = min(end, position + length)
                let zero = flags & flag != 0
                if let last = extents.last, last.zero == zero, last.range.upperBound == position {
                    extents[extents.count - 1].range = last.range.lowerBound..<stop
                } else {
                    extents.append(Extent(range: position..<stop, zero: zero))
                }
                position = stop
            }
        }
    }

    /// Which parts of `range` read as zeros, front to back, from one block-status request: the extents may end
    /// before `range` does (ask again from where they stop), never after it, and never overlap. Without
    /// `base:allocation`, the whole range is one extent of data.
    public func extents(in range: Range<UInt64>) throws(DiskVaultError) -> [Extent] {
        let end = min(range.upperBound, size)
        guard range.lowerBound < end else { return [] }
        guard reportsZeros else { return [Extent(range: range.lowerBound..<end, zero: false)] }
        return try blockStatus(in: range.lowerBound..<end, context: LIBNBD_CONTEXT_BASE_ALLOCATION, flag: UInt32(LIBNBD_STATE_ZERO))
    }

    /// Which parts of `range` the dirty bitmap `context` (`qemu:dirty-bitmap:NAME`, asked for at connect) marks
    /// dirty, front to back from one request: `zero` here means dirty. The extents may end before `range` does.
    public func dirtyExtents(in range: Range<UInt64>, context: String) throws(DiskVaultError) -> [Extent] {
        let end = min(range.upperBound, size)
        guard range.lowerBound < end else { return [] }
        guard offers(context: context) else {
            throw DiskVaultError(.io, "NBD export \(name): the server does not offer \(context)")
        }
        // NBD_STATE_DIRTY is bit 0 of a dirty bitmap's flags.
        return try blockStatus(in: range.lowerBound..<end, context: context, flag: 1)
    }

    private func blockStatus(in range: Range<UInt64>, context: String, flag: UInt32) throws(DiskVaultError) -> [Extent] {
        let end = range.upperBound
        // One request covers at most 1 GiB: the protocol's lengths are 32 bits.
        let count = min(end - range.lowerBound, 1 << 30)
        let collector = ExtentCollector(context: context, flag: flag, start: range.lowerBound, end: range.lowerBound + count)
        let box = Unmanaged.passRetained(collector)
        defer { box.release() }
        let callback = nbd_extent_callback(
            callback: { user, context, offset, entries, count, _ in
                guard let user, let context, let entries else { return 0 }
                let c = Unmanaged<ExtentCollector>.fromOpaque(user).takeUnretainedValue()
                c.add(context: String(cString: context), offset: offset, entries: UnsafeBufferPointer(start: entries, count: count))
                return 0
            },
            user_data: box.toOpaque(), free: nil)
        try run("cannot read block status at byte \(range.lowerBound)") { h in
            nbd_aio_block_status(h, count, range.lowerBound, callback, nbd_completion_callback(), 0)
        }
        if let problem = collector.problem { throw DiskVaultError(.io, "NBD export \(name): \(problem)") }
        guard !collector.extents.isEmpty else {
            throw DiskVaultError(.io, "NBD export \(name): block status at byte \(range.lowerBound) described no extent")
        }
        return collector.extents
    }
}
