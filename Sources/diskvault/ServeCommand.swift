import ArgumentParser
import DiskVault
import Foundation

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a recovery point as a read-only NBD export (instant restore, inspection, copies).",
        discussion: """
            The point's index is checked whole first; then every chunk a client reads is read from the vault, \
            checked against its digest and inflated on demand, through a small cache (memory stays bounded \
            whatever the disk's size). A missing or damaged chunk is an I/O error for the reads that touch it, \
            logged with its name, never other bytes. Zero chunks are holes to clients that ask (base:allocation). \
            Writes are refused: the point never changes. The vault is held shared while the export runs, so no gc \
            frees what a client may read. A point of an encrypted disk is served only with the key vault its \
            restore needs.

            The export is unauthenticated and unencrypted: it listens on a unix socket (--socket, mode 0600) or a \
            loopback address; any other address needs --allow-remote. It runs until SIGINT or SIGTERM.

            Examples:
              diskvault serve --vault /backup/v --disk web --socket /run/web.sock &
              nbdinfo 'nbd+unix:///web?socket=/run/web.sock'
              qemu-img create -f qcow2 -F raw -b 'nbd+unix:///web?socket=/run/web.sock' web-overlay.qcow2
              diskvault serve --vault /backup/v --disk web --point 20261201T021500Z-3f2a1b --listen 127.0.0.1:10809
            """)

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "The protected disk.")
    var disk: String

    @Option(name: .long, help: "Point id, or latest.")
    var point: String = "latest"

    @Option(name: .long, help: ArgumentHelp("Listen on a unix socket at this new path (removed when the export stops).", valueName: "path"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("Listen on TCP at ADDRESS:PORT (a numeric address; port 0 picks a free one).", valueName: "address:port"))
    var listen: String?

    @Flag(name: .long, help: "Allow --listen on an address other hosts can reach (the export has no authentication).")
    var allowRemote = false

    @Option(name: .long, help: ArgumentHelp("The export's name (default: the disk's).", valueName: "name"))
    var name: String?

    @Option(name: .long, help: "The most connections at once; more are refused.")
    var maxConnections: Int = 16

    @OptionGroup var keys: KeyVaultAccessOptions
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try DiskName.validate(disk)
        let address: ServeAddress
        switch (socket, listen) {
        case (let path?, nil): address = .unix(path)
        case (nil, let text?): address = try ServeAddress.parseTCP(text)
        default: throw DiskVaultError(.usage, "give one of --socket PATH or --listen ADDRESS:PORT")
        }
        if !address.isLocal && !allowRemote {
            throw DiskVaultError(.usage, "--listen \(listen ?? ""): other hosts could read this disk, and the export has no authentication; add --allow-remote to mean it")
        }
        guard (1...1024).contains(maxConnections) else { throw DiskVaultError(.usage, "--max-connections must be from 1 to 1024") }
        var options = ServeOptions(disk: disk, point: point, address: address)
        options.exportName = name
        options.maxConnections = maxConnections
        options.keyVault = try keys.access()
        let vault = try vaultOptions.open()
        let json = output.json
        let report = try InterruptCleanup.stoppedBySignal { () throws(DiskVaultError) -> ServeReport in
            try Serve.run(vault, options: options, control: lock.control, ready: { uri, point, size in
                if json {
                    // One object, on one line, as soon as clients may connect: a script reads it and goes on.
                    print(JSON.string(ServeReady(uri: uri, disk: point.disk, point: point.id, size: size, pid: getpid()), pretty: false))
                } else {
                    print("serving disk \(point.disk) point \(point.id) (\(ByteCount.format(size))) at \(uri)")
                    if !address.isLocal { Terminal.warning("the export listens on \(listen ?? "") with no authentication: anyone who reaches it reads the disk") }
                }
                fflush(nil)
            }, log: { Terminal.raw("diskvault: serve: \($0)") })
        }
        let line = "stopped: \(report.connections) connection(s), \(report.requests) request(s), \(ByteCount.format(report.bytesRead)) read, \(report.errors) failed read(s), \(report.chunkLoads) chunk load(s), \(report.cacheHits) cache hit(s)"
        if json { Terminal.raw(line); return }
        print(line)
    }
}

/// What `serve --json` prints once the export listens.
struct ServeReady: Codable {
    var uri: String
    var disk: String
    var point: String
    var size: UInt64
    var pid: Int32
}
