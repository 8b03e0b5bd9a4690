import Foundation
internal import CLinux

/// A read-only NBD server of one export (the NBD project's proto.md): the fixed newstyle handshake with
/// NBD_OPT_GO, INFO, LIST, ABORT, EXPORT_NAME, STRUCTURED_REPLY and the `base:allocation` meta context;
/// NBD_CMD_READ, BLOCK_STATUS and DISC; writes, trims and zeroing answered EPERM. One thread per connection,
/// a bounded number of connections; a client that breaks the protocol loses its connection, never the server.
final class NBDServer: @unchecked Sendable {
    enum Wire {
        static let nbdMagic: UInt64 = 0x4E42_444D_4147_4943  // "NBDMAGIC"
        static let optMagic: UInt64 = 0x4948_4156_454F_5054  // "IHAVEOPT"
        static let replyMagic: UInt64 = 0x3_e889_0455_65a9
        static let requestMagic: UInt32 = 0x2560_9513
        static let simpleReplyMagic: UInt32 = 0x6744_6698
        static let structuredReplyMagic: UInt32 = 0x668e_33ef

        static let flagFixedNewstyle: UInt16 = 1, flagNoZeroes: UInt16 = 2
        static let optExportName: UInt32 = 1, optAbort: UInt32 = 2, optList: UInt32 = 3, optStartTLS: UInt32 = 5
        static let optInfo: UInt32 = 6, optGo: UInt32 = 7, optStructuredReply: UInt32 = 8
        static let optListMetaContext: UInt32 = 9, optSetMetaContext: UInt32 = 10
        static let repAck: UInt32 = 1, repServer: UInt32 = 2, repInfo: UInt32 = 3, repMetaContext: UInt32 = 4
        static let repErrUnsup: UInt32 = 0x8000_0001, repErrPolicy: UInt32 = 0x8000_0002
        static let repErrInvalid: UInt32 = 0x8000_0003, repErrUnknown: UInt32 = 0x8000_0006
        static let repErrTooBig: UInt32 = 0x8000_0009
        static let infoExport: UInt16 = 0, infoBlockSize: UInt16 = 3
        static let transHasFlags: UInt16 = 1, transReadOnly: UInt16 = 2, transCanMultiConn: UInt16 = 1 << 8
        static let cmdRead: UInt16 = 0, cmdWrite: UInt16 = 1, cmdDisc: UInt16 = 2, cmdFlush: UInt16 = 3
        static let cmdTrim: UInt16 = 4, cmdCache: UInt16 = 5, cmdWriteZeroes: UInt16 = 6, cmdBlockStatus: UInt16 = 7
        static let cmdFlagReqOne: UInt16 = 1 << 3
        static let replyFlagDone: UInt16 = 1
        static let replyNone: UInt16 = 0, replyOffsetData: UInt16 = 1, replyOffsetHole: UInt16 = 2
        static let replyBlockStatus: UInt16 = 5, replyErrorOffset: UInt16 = 0x8002
        static let stateHole: UInt32 = 1, stateZero: UInt32 = 2
        static let EPERM: UInt32 = 1, EIO: UInt32 = 5, EINVAL: UInt32 = 22, ENOTSUP: UInt32 = 95
        static let baseAllocation = "base:allocation"
        static let baseAllocationID: UInt32 = 1
    }

    /// The most bytes a request may read (and a write may carry before it is refused): the protocol's default.
    static let maxPayload = 32 << 20
    /// Bytes of data sent per reply piece: the size of each connection's buffer.
    static let segment = 256 << 10
    /// The most bytes of option data taken; a longer option is refused (and one over 1 MiB ends the connection).
    static let maxOption = 4096

    struct Counters: Codable, Sendable {
        var connections = 0
        var requests = 0
        var bytesRead: UInt64 = 0
        var errors = 0
        var refusedConnections = 0
    }

    let image: PointImage
    let exportName: String
    let maxConnections: Int
    let log: @Sendable (String) -> Void
    private let state = NSCondition()
    private var open: [Int32: Thread] = [:]
    private var counters = Counters()
    /// Connections answering a read now: a chunk is loaded ahead only while a core would otherwise idle.
    private var reading = 0
    private let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    private static let zeros = ByteBuffer(capacity: segment)

    init(image: PointImage, exportName: String, maxConnections: Int, log: @escaping @Sendable (String) -> Void) {
        self.image = image
        self.exportName = exportName
        self.maxConnections = maxConnections
        self.log = log
        Self.zeros.storage.initializeMemory(as: UInt8.self, repeating: 0)
    }

    var stats: Counters { state.lock(); defer { state.unlock() }; return counters }

    /// Accepts connections on `listener` until `stop` says so (polled every 200 ms), then ends every connection
    /// and waits for their threads.
    func serve(listener: Int32, stop: () -> Bool) throws(DiskVaultError) {
        while !stop() {
            let fd = dv_accept(listener, 200)
            if fd == -2 { continue }
            if fd < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM { usleep(100_000); continue }
                throw DiskVaultError.system("accept", e, path: "NBD export \(exportName)", doing: "cannot accept a connection")
            }
            state.lock()
            if open.count >= maxConnections {
                counters.refusedConnections += 1
                state.unlock()
                log("refused a connection: \(maxConnections) are open (--max-connections)")
                Glibc.close(fd)
                continue
            }
            counters.connections += 1
            let thread = Thread { [self] in
                Connection(server: self, fd: fd).run()
                Glibc.close(fd)
                state.lock()
                open[fd] = nil
                state.broadcast()
                state.unlock()
            }
            thread.stackSize = 1 << 20
            open[fd] = thread
            state.unlock()
            thread.start()
        }
        // Stopping: every connection is cut (its thread sees the end of its socket) and waited for.
        state.lock()
        for fd in open.keys { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
        while !open.isEmpty { state.wait() }
        state.unlock()
    }

    /// Counts a read from its start to its end (`body`); true for `body` when fewer reads run than cores.
    func reading<T>(_ body: (_ coreIdle: Bool) throws -> T) rethrows -> T {
        state.lock()
        reading += 1
        let idle = reading < cores
        state.unlock()
        defer { state.lock(); reading -= 1; state.unlock() }
        return try body(idle)
    }

    func count(_ change: (inout Counters) -> Void) {
        state.lock()
        change(&counters)
        state.unlock()
    }
}

/// One client's connection: the handshake, then requests in order until it disconnects or breaks the protocol.
private final class Connection {
    typealias W = NBDServer.Wire
    struct Closed: Error {
        var why: String?
    }

    let server: NBDServer
    let fd: Int32
    var structured = false
    var allocationContext = false
    /// Where a piece of a reply is copied out of the cache before it is sent (and the data of a refused write goes).
    let buffer = ByteBuffer(capacity: NBDServer.segment)
    /// Where the last read ended: a read that starts there is sequential, and the chunk after it is loaded
    /// ahead while this one is sent.
    var lastEnd: UInt64? = nil

    init(server: NBDServer, fd: Int32) {
        self.server = server
        self.fd = fd
    }

    func run() {
        do {
            // A client has 30 s for each step of the handshake; once it is in, it may be idle for as long as it likes.
            setTimeout(seconds: 30)
            guard try handshake() else { return }
            setTimeout(seconds: 0)
            try transmission()
        } catch let closed as Closed {
            if let why = closed.why { server.log("closed a connection: \(why)") }
        } catch {
            server.log("closed a connection: \(error)")
        }
    }

    private func setTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    // MARK: bytes on the wire

    private func receive(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try receive(into: $0) }
        return out
    }

    private func receive(into b: UnsafeMutableRawBufferPointer) throws {
        var got = 0
        while got < b.count {
            let n = Glibc.recv(fd, b.baseAddress! + got, b.count - got, 0)
            if n > 0 { got += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw Closed(why: "the client sent nothing for 30 s during the handshake") }
            throw Closed(why: got == 0 && n == 0 ? nil : "the client hung up mid-message")
        }
    }

    private func discard(_ count: Int) throws {
        var left = count
        while left > 0 {
            let n = min(left, NBDServer.segment)
            try receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer.storage[0..<n]))
            left -= n
        }
    }

    private func send(_ parts: UnsafeRawBufferPointer...) throws {
        for part in parts {
            var sent = 0
            while sent < part.count {
                let n = Glibc.send(fd, part.baseAddress! + sent, part.count - sent, Int32(MSG_NOSIGNAL))
                if n > 0 { sent += n; continue }
                if n < 0 && errno == EINTR { continue }
                throw Closed(why: nil)
            }
        }
    }

    private func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send($0) }
    }

    // MARK: handshake

    /// True when the client goes on to transmission; false when it ended the handshake.
    private func handshake() throws -> Bool {
        var hello = Bytes()
        hello.u64(W.nbdMagic)
        hello.u64(W.optMagic)
        hello.u16(W.flagFixedNewstyle | W.flagNoZeroes)
        try send(hello.bytes)
        let clientFlags = Bytes.u32(try receive(4), 0)
        let noZeroes = clientFlags & UInt32(W.flagNoZeroes) != 0
        while true {
            let head = try receive(16)
            guard Bytes.u64(head, 0) == W.optMagic else { throw Closed(why: "an option without its magic") }
            let option = Bytes.u32(head, 8), length = Int(Bytes.u32(head, 12))
            if length > NBDServer.maxOption {
                guard length <= 1 << 20 else { throw Closed(why: "an option of \(length) bytes") }
                try discard(length)
                try reply(option, W.repErrTooBig, message: "option data larger than \(NBDServer.maxOption) bytes")
                continue
            }
            let data = try receive(length)
            switch option {
            case W.optExportName:
                guard known(String(decoding: data, as: UTF8.self)) else { throw Closed(why: "EXPORT_NAME of an unknown export") }
                var b = Bytes()
                b.u64(server.image.size)
                b.u16(transmissionFlags)
                if !noZeroes { b.bytes += [UInt8](repeating: 0, count: 124) }
                try send(b.bytes)
                return true
            case W.optAbort:
                try? reply(option, W.repAck)
                return false
            case W.optList:
                guard data.isEmpty else { try reply(option, W.repErrInvalid, message: "LIST takes no data"); continue }
                var b = Bytes()
                b.u32(UInt32(server.exportName.utf8.count))
                b.bytes += Array(server.exportName.utf8)
                try reply(option, W.repServer, data: b.bytes)
                try reply(option, W.repAck)
            case W.optStartTLS:
                try reply(option, W.repErrPolicy, message: "this server has no TLS: use a unix socket or loopback")
            case W.optStructuredReply:
                guard data.isEmpty else { try reply(option, W.repErrInvalid, message: "STRUCTURED_REPLY takes no data"); continue }
                structured = true
                try reply(option, W.repAck)
            case W.optInfo, W.optGo:
                if try info(option, data), option == W.optGo { return true }
            case W.optListMetaContext, W.optSetMetaContext:
                try metaContext(option, data)
            default:
                try reply(option, W.repErrUnsup, message: "option \(option) is not supported")
            }
        }
    }

    private var transmissionFlags: UInt16 { W.transHasFlags | W.transReadOnly | W.transCanMultiConn }

    private func known(_ name: String) -> Bool { name.isEmpty || name == server.exportName }

    private func reply(_ option: UInt32, _ type: UInt32, data: [UInt8] = [], message: String? = nil) throws {
        let payload = message.map { Array($0.utf8) } ?? data
        var b = Bytes()
        b.u64(W.replyMagic)
        b.u32(option)
        b.u32(type)
        b.u32(UInt32(payload.count))
        try send(b.bytes + payload)
    }

    /// NBD_OPT_INFO and NBD_OPT_GO: true when the export was found and described.
    private func info(_ option: UInt32, _ data: [UInt8]) throws -> Bool {
        guard data.count >= 6 else { try reply(option, W.repErrInvalid, message: "request too short"); return false }
        let nameLength = Int(Bytes.u32(data, 0))
        guard nameLength <= data.count - 6 else { try reply(option, W.repErrInvalid, message: "name longer than the request"); return false }
        let name = String(decoding: data[4..<4 + nameLength], as: UTF8.self)
        let count = Int(Bytes.u16(data, 4 + nameLength))
        guard data.count == 6 + nameLength + 2 * count else { try reply(option, W.repErrInvalid, message: "request of the wrong length"); return false }
        guard known(name) else { try reply(option, W.repErrUnknown, message: "no export named \"\(name)\" (this server has \"\(server.exportName)\")"); return false }
        let wanted = (0..<count).map { Bytes.u16(data, 6 + nameLength + 2 * $0) }
        var export = Bytes()
        export.u16(W.infoExport)
        export.u64(server.image.size)
        export.u16(transmissionFlags)
        try reply(option, W.repInfo, data: export.bytes)
        if wanted.contains(W.infoBlockSize) {
            var sizes = Bytes()
            sizes.u16(W.infoBlockSize)
            sizes.u32(1)
            sizes.u32(4096)
            sizes.u32(UInt32(NBDServer.maxPayload))
            try reply(option, W.repInfo, data: sizes.bytes)
        }
        try reply(option, W.repAck)
        return true
    }

    private func metaContext(_ option: UInt32, _ data: [UInt8]) throws {
        guard data.count >= 8 else { try reply(option, W.repErrInvalid, message: "request too short"); return }
        let nameLength = Int(Bytes.u32(data, 0))
        guard nameLength <= data.count - 8 else { try reply(option, W.repErrInvalid, message: "name longer than the request"); return }
        let name = String(decoding: data[4..<4 + nameLength], as: UTF8.self)
        let count = Int(Bytes.u32(data, 4 + nameLength))
        var queries: [String] = []
        var at = 8 + nameLength
        for _ in 0..<min(count, 256) {
            guard at + 4 <= data.count else { break }
            let n = Int(Bytes.u32(data, at))
            guard n <= data.count - at - 4 else { break }
            queries.append(String(decoding: data[at + 4..<at + 4 + n], as: UTF8.self))
            at += 4 + n
        }
        guard queries.count == count, at == data.count else { try reply(option, W.repErrInvalid, message: "malformed queries"); return }
        guard known(name) else { try reply(option, W.repErrUnknown, message: "no export named \"\(name)\""); return }
        if option == W.optSetMetaContext && !structured {
            try reply(option, W.repErrInvalid, message: "SET_META_CONTEXT needs STRUCTURED_REPLY first")
            return
        }
        let matches = (option == W.optListMetaContext && queries.isEmpty) || queries.contains { $0 == W.baseAllocation || (option == W.optListMetaContext && $0 == "base:") }
        if option == W.optSetMetaContext { allocationContext = matches }
        if matches {
            var b = Bytes()
            b.u32(W.baseAllocationID)
            b.bytes += Array(W.baseAllocation.utf8)
            try reply(option, W.repMetaContext, data: b.bytes)
        }
        try reply(option, W.repAck)
    }

    // MARK: transmission

    private func transmission() throws {
        let head = ByteBuffer(capacity: 28)
        while true {
            try receive(into: head.mutablePrefix(28))
            let h = UnsafeRawBufferPointer(head.prefix(28))
            guard Bytes.u32(h, 0) == W.requestMagic else { throw Closed(why: "a request without its magic") }
            let flags = Bytes.u16(h, 4), type = Bytes.u16(h, 6)
            let cookie = Bytes.u64(h, 8), offset = Bytes.u64(h, 16), length = Bytes.u32(h, 24)
            server.count { $0.requests += 1 }
            switch type {
            case W.cmdDisc:
                return
            case W.cmdRead:
                guard inBounds(offset, length), Int(length) <= NBDServer.maxPayload else {
                    try error(cookie, W.EINVAL, "read of \(length) bytes at \(offset) outside the disk or too large")
                    continue
                }
                try server.reading { idle in try read(cookie, offset: offset, length: Int(length), readAhead: idle) }
            case W.cmdWrite:
                guard Int(length) <= NBDServer.maxPayload else { throw Closed(why: "a write of \(length) bytes") }
                try discard(Int(length))
                try error(cookie, W.EPERM, "the export is read-only")
            case W.cmdTrim, W.cmdWriteZeroes:
                try error(cookie, W.EPERM, "the export is read-only")
            case W.cmdFlush, W.cmdCache:
                try simple(cookie, 0)
            case W.cmdBlockStatus:
                guard structured, allocationContext else {
                    try error(cookie, W.EINVAL, "block status needs structured replies and the base:allocation context")
                    continue
                }
                guard inBounds(offset, length), length > 0 else {
                    try error(cookie, W.EINVAL, "block status of \(length) bytes at \(offset) outside the disk")
                    continue
                }
                try blockStatus(cookie, offset: offset, length: length, one: flags & W.cmdFlagReqOne != 0)
            default:
                try error(cookie, W.EINVAL, "command \(type) is not supported")
            }
        }
    }

    private func inBounds(_ offset: UInt64, _ length: UInt32) -> Bool {
        offset <= server.image.size && UInt64(length) <= server.image.size - offset
    }

    private func simple(_ cookie: UInt64, _ errorCode: UInt32) throws {
        var b = Bytes()
        b.u32(W.simpleReplyMagic)
        b.u32(errorCode)
        b.u64(cookie)
        try send(b.bytes)
    }

    private func chunkHeader(_ flags: UInt16, _ type: UInt16, _ cookie: UInt64, _ length: Int) -> Bytes {
        var b = Bytes()
        b.u32(W.structuredReplyMagic)
        b.u16(flags)
        b.u16(type)
        b.u64(cookie)
        b.u32(UInt32(length))
        return b
    }

    private func error(_ cookie: UInt64, _ code: UInt32, _ message: String, offset: UInt64? = nil) throws {
        guard structured else { return try simple(cookie, code) }
        let text = Array(message.utf8.prefix(512))
        var b = chunkHeader(W.replyFlagDone, offset == nil ? 0x8001 : W.replyErrorOffset, cookie, 6 + text.count + (offset == nil ? 0 : 8))
        b.u32(code)
        b.u16(UInt16(text.count))
        b.bytes += text
        if let offset { b.u64(offset) }
        try send(b.bytes)
    }

    /// Answers a read; `readAhead`: when it continues the last one, the chunk after it is loaded meanwhile.
    private func read(_ cookie: UInt64, offset: UInt64, length: Int, readAhead: Bool) throws {
        let image = server.image
        if length > 0 {
            if readAhead, offset == lastEnd { image.prefetch(chunk: Int((offset + UInt64(length) - 1) / UInt64(image.chunkSize)) + 1) }
            lastEnd = offset + UInt64(length)
        }
        if length == 0 {
            return structured ? try send(chunkHeader(W.replyFlagDone, W.replyNone, cookie, 0).bytes) : try simple(cookie, 0)
        }
        if !structured {
            // A simple reply cannot be taken back: every chunk is loaded and checked before its header goes out.
            do {
                try image.check(offset: offset, length: length)
            } catch {
                server.log("read of \(length) bytes at \(offset): \(error)")
                server.count { $0.errors += 1 }
                return try self.error(cookie, W.EIO, "\(error)")
            }
            try simple(cookie, 0)
            do {
                try image.read(offset: offset, length: length, into: buffer) { (piece) throws(DiskVaultError) in
                    do {
                        switch piece {
                        case .data(_, let bytes): try send(bytes)
                        case .zeros(_, var n):
                            while n > 0 {
                                let k = min(n, NBDServer.segment)
                                try send(NBDServer.zerosPrefix(k))
                                n -= k
                            }
                        }
                    } catch { throw DiskVaultError(.io, "the client hung up") }
                }
            } catch {
                // The header said success: the only honest way on is to end the connection.
                server.log("read of \(length) bytes at \(offset) failed after its reply began: \(error)")
                server.count { $0.errors += 1 }
                throw Closed(why: nil)
            }
            server.count { $0.bytesRead += UInt64(length) }
            return
        }
        // Structured: one chunk per piece (data, or a hole for zeros), sent as it comes, the last with
        // DONE; a chunk that cannot be read ends the reply with an error for its offset.
        let end = offset + UInt64(length)
        var sent = offset
        var hungUp = false
        do {
            try image.read(offset: offset, length: length, into: buffer) { (piece) throws(DiskVaultError) in
                do {
                    switch piece {
                    case .data(let at, let bytes):
                        let done = at + UInt64(bytes.count) == end
                        var b = chunkHeader(done ? W.replyFlagDone : 0, W.replyOffsetData, cookie, 8 + bytes.count)
                        b.u64(at)
                        try b.bytes.withUnsafeBytes { head in try send(head, bytes) }
                        sent = at + UInt64(bytes.count)
                    case .zeros(let at, let n):
                        var b = chunkHeader(at + UInt64(n) == end ? W.replyFlagDone : 0, W.replyOffsetHole, cookie, 12)
                        b.u64(at)
                        b.u32(UInt32(n))
                        try send(b.bytes)
                        sent = at + UInt64(n)
                    }
                } catch {
                    hungUp = true
                    throw DiskVaultError(.io, "the client hung up")
                }
            }
        } catch {
            if hungUp { throw Closed(why: nil) }
            server.log("read of \(length) bytes at \(offset): \(error)")
            server.count { $0.errors += 1 }
            // Where the bad chunk starts: after what was sent.
            return try self.error(cookie, W.EIO, "\(error)", offset: sent)
        }
        server.count { $0.bytesRead += UInt64(length) }
    }

    private func blockStatus(_ cookie: UInt64, offset: UInt64, length: UInt32, one: Bool) throws {
        let runs: [(length: UInt64, zero: Bool)]
        do {
            runs = try server.image.allocation(offset: offset, length: UInt64(length), limit: one ? 1 : 1024)
        } catch {
            server.log("block status at \(offset): \(error)")
            return try self.error(cookie, W.EIO, "\(error)", offset: offset)
        }
        var b = chunkHeader(W.replyFlagDone, W.replyBlockStatus, cookie, 4 + 8 * runs.count)
        b.u32(W.baseAllocationID)
        for run in runs {
            b.u32(UInt32(min(run.length, UInt64(length))))
            b.u32(run.zero ? W.stateHole | W.stateZero : 0)
        }
        try send(b.bytes)
    }
}

extension NBDServer {
    static func zerosPrefix(_ n: Int) -> UnsafeRawBufferPointer { zeros.prefix(n) }
}

/// Big-endian fields, written and read.
private struct Bytes {
    var bytes: [UInt8] = []
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    static func u16<C: Collection>(_ b: C, _ at: Int) -> UInt16 where C.Element == UInt8, C.Index == Int {
        UInt16(b[b.startIndex + at]) << 8 | UInt16(b[b.startIndex + at + 1])
    }
    static func u32<C: Collection>(_ b: C, _ at: Int) -> UInt32 where C.Element == UInt8, C.Index == Int {
        (0..<4).reduce(0) { $0 << 8 | UInt32(b[b.startIndex + at + $1]) }
    }
    static func u64<C: Collection>(_ b: C, _ at: Int) -> UInt64 where C.Element == UInt8, C.Index == Int {
        (0..<8).reduce(0) { $0 << 8 | UInt64(b[b.startIndex + at + $1]) }
    }
}
