import Foundation
internal import CLinux

/// Where `serve` listens: a unix socket (a new path, removed when the server stops) or a TCP address.
public enum ServeAddress: Sendable, Equatable {
    case unix(String)
    case tcp(host: String, port: Int)

    /// Parses HOST:PORT (IPv4, or [IPv6]:PORT).
    public static func parseTCP(_ text: String) throws(DiskVaultError) -> ServeAddress {
        let host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw DiskVaultError(.usage, "--listen \(text): expected [ADDRESS]:PORT") }
            port = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw DiskVaultError(.usage, "--listen \(text): expected ADDRESS:PORT, e.g. 127.0.0.1:10809") }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard let p = Int(port), (0...65535).contains(p), !host.isEmpty else {
            throw DiskVaultError(.usage, "--listen \(text): expected ADDRESS:PORT with a port from 0 to 65535")
        }
        return .tcp(host: String(host), port: p)
    }

    /// Loopback addresses and unix sockets: reachable from this host only.
    public var isLocal: Bool {
        switch self {
        case .unix: return true
        case .tcp(let host, _): return host == "::1" || host.hasPrefix("127.")
        }
    }
}

public struct ServeOptions: Sendable {
    public var disk: String
    public var point: String?
    public var address: ServeAddress
    /// The export's name (default the disk's); clients asking for "" get it too.
    public var exportName: String?
    public var maxConnections = 16
    public var keyVault: KeyVaultAccess?

    public init(disk: String, point: String?, address: ServeAddress) {
        self.disk = disk
        self.point = point
        self.address = address
    }
}

public struct ServeReport: Codable, Sendable {
    public var disk: String
    public var point: String
    public var size: UInt64
    public var uri: String
    public var connections: Int
    public var requests: Int
    public var bytesRead: UInt64
    public var errors: Int
    public var refusedConnections: Int
    /// Chunks loaded (read, checked, inflated) and reads of a chunk the cache already held.
    public var chunkLoads: Int
    public var cacheHits: Int
    public var seconds: Double
}

/// `serve`: a point as a read-only NBD export, for as long as the process runs (until SIGINT or SIGTERM, or
/// `stop`). The vault is held shared meanwhile, so no gc frees a chunk a client may still read; an encrypted
/// disk's point is served only after the checks its restore makes (its key vault present, holding its keys).
public enum Serve {
    public static func run(
        _ vault: Vault, options: ServeOptions, control: JobControl = .init(), stop: @escaping () -> Bool = { false },
        ready: (_ uri: String, _ point: RecoveryPoint, _ size: UInt64) -> Void, log: @escaping @Sendable (String) -> Void
    ) throws(DiskVaultError) -> ServeReport {
        try Job.run(vault, kind: .serve, disk: options.disk, control: control) { (outcome) throws(DiskVaultError) in
            let started = Date()
            let point = try vault.point(disk: options.disk, id: options.point)
            var restoreOptions = RestoreOptions(disk: options.disk, point: point.id, target: "an NBD export")
            restoreOptions.keyVault = options.keyVault
            _ = try Restore(vault: vault, options: restoreOptions).keysForRestore(point)
            let image = try PointImage(vault: vault, point: point)
            let name = options.exportName ?? options.disk
            let (listener, uri, socketPath) = try listen(options.address, exportName: name)
            let cleanup = socketPath.map { InterruptCleanup.register($0) }
            defer {
                Glibc.close(listener)
                cleanup?.cancel()
                if let socketPath { unlink(socketPath) }
            }
            let server = NBDServer(image: image, exportName: name, maxConnections: options.maxConnections, log: log)
            ready(uri, point, image.size)
            try server.serve(listener: listener) { stop() || InterruptCleanup.pendingSignal != nil }
            let s = server.stats
            outcome.bytes = s.bytesRead
            outcome.point = point.id
            if s.errors > 0 { outcome.warnings = ["\(s.errors) read(s) failed: see the log"] }
            return ServeReport(
                disk: point.disk, point: point.id, size: image.size, uri: uri, connections: s.connections, requests: s.requests,
                bytesRead: s.bytesRead, errors: s.errors, refusedConnections: s.refusedConnections,
                chunkLoads: image.cacheCounts.loads, cacheHits: image.cacheCounts.hits, seconds: Date().timeIntervalSince(started))
        }
    }

    static func listen(_ address: ServeAddress, exportName: String) throws(DiskVaultError) -> (Int32, String, String?) {
        let name = exportName.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? exportName
        switch address {
        case .unix(let path):
            let fd = dv_unix_listen(path)
            guard fd >= 0 else {
                let e = errno
                if e == EADDRINUSE { throw DiskVaultError(.alreadyExists, "cannot listen: something is already at this path (remove a stale socket by hand)", path: path) }
                throw DiskVaultError.system("bind", e, path: path, doing: "cannot listen")
            }
            let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
            return (fd, "nbd+unix:///\(name)?socket=\(absolute)", path)
        case .tcp(let host, let port):
            var bound: Int32 = 0
            let fd = dv_tcp_listen(host, Int32(port), &bound)
            guard fd >= 0 else {
                let e = errno
                if e == EINVAL { throw DiskVaultError(.usage, "--listen \(host):\(port): \(host) is not a numeric IPv4 or IPv6 address") }
                throw DiskVaultError.system("bind", e, path: "\(host):\(port)", doing: "cannot listen")
            }
            let shown = host.contains(":") ? "[\(host)]" : host
            return (fd, "nbd://\(shown):\(bound)/\(name)", nil)
        }
    }
}
