import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A vault in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, SeaweedFS), under a prefix of a bucket.
/// Nothing here is specific to one store: path-style requests, Signature V4, `If-None-Match: *` for
/// put-if-absent, ListObjectsV2 with a delimiter for folders. Every object appears whole or not at all (S3 puts
/// are atomic) and is durable once its PUT is answered, so `barrier()` has nothing to do. Requests that fail
/// on the way (connect, reset, timeout) or with 5xx/429 are tried again with backoff; each is safe to repeat,
/// since every write is a put-if-absent of content that does not change, a replace of the same bytes, or a delete.
public final class S3Storage: VaultStorage {
    public let s3: S3Location
    public var location: String { s3.description }
    let http: HTTPClient
    /// How long a lock lasts without renewal (seconds); holders renew every quarter of it.
    let leaseSeconds: Int
    /// Tries of one request, and the first pause between them (doubled each time, with jitter).
    let attempts: Int
    let firstBackoff: Double

    /// The leases this storage's locks hold: while one has lapsed, nothing more is written or deleted.
    let held = Mutex<[S3Lock]>([])

    /// The most an object written through `makeWriter` keeps in memory; beyond it, it grows in an unlinked file.
    static let writerMemory = 8 << 20

    public init(_ s3: S3Location, environment: [String: String] = ProcessInfo.processInfo.environment) throws(DiskVaultError) {
        self.s3 = s3
        http = HTTPClient(credentials: try S3Location.credentials(environment))
        leaseSeconds = environment["DISKVAULT_LOCK_LEASE"].flatMap { Int($0) }.map { max(4, min($0, 86_400)) } ?? 120
        attempts = environment["DISKVAULT_S3_ATTEMPTS"].flatMap { Int($0) }.map { max(1, min($0, 20)) } ?? 7
        firstBackoff = 0.2
    }

    // MARK: requests

    /// The object key in the bucket of vault key `key`.
    func objectKey(_ key: String) -> String { s3.prefix.isEmpty ? key : "\(s3.prefix)/\(key)" }

    func url(_ objectKey: String?, query: [(String, String)] = []) -> String {
        var u = "\(s3.endpoint)/\(URIEncoding.encode(s3.bucket, keepSlash: false))"
        if let objectKey { u += "/" + URIEncoding.encode(objectKey, keepSlash: true) }
        if !query.isEmpty { u += "?" + URIEncoding.query(query) }
        return u
    }

    /// What a request's retries learned: whether an earlier try may have reached the store.
    struct Outcome {
        var response: HTTPClient.Response
        var retried: Bool
    }

    /// Sends one request, trying again on transient failures; statuses in `accept` are answers, any other is an
    /// error naming the vault and `key` (or the bucket).
    @discardableResult
    func send(
        _ method: String, _ key: String?, query: [(String, String)] = [], headers: [String] = [], body: HTTPClient.Body = .none,
        sink: HTTPClient.Sink = .discard, accept: Set<Int> = [200], doing: String
    ) throws(DiskVaultError) -> Outcome {
        let target = url(key.map(objectKey), query: query)
        if method == "PUT" || method == "DELETE" || method == "POST", key?.hasPrefix("\(VaultLock.folder)/") != true {
            // A run whose lease lapsed may have lost the vault to another (a gc): it changes nothing more.
            for lock in held.withLock({ $0 }) { try lock.confirm() }
        }
        var lastProblem = ""
        var retried = false
        for attempt in 0..<attempts {
            if attempt > 0 {
                retried = true
                let pause = firstBackoff * pow(2, Double(attempt - 1)) * Double.random(in: 0.75...1.25)
                Thread.sleep(forTimeInterval: min(pause, 8))
            }
            let response: HTTPClient.Response
            do {
                response = try http.perform(method: method, url: target, headers: headers, body: body, sink: sink)
            } catch {
                if error.tooLarge {
                    throw DiskVaultError(.corrupt, "\(doing): the object store answered with more bytes than the object may have", path: path(key))
                }
                lastProblem = error.message
                if error.transient { continue }
                throw DiskVaultError(.io, "\(doing): the object store at \(s3.endpoint) cannot be reached: \(error.message)", path: path(key))
            }
            if accept.contains(response.status) { return Outcome(response: response, retried: retried) }
            if response.status >= 500 || response.status == 429 {
                lastProblem = describe(response)
                continue
            }
            throw failure(response, key: key, doing: doing)
        }
        throw DiskVaultError(
            .io, "\(doing): the object store at \(s3.endpoint) did not answer after \(attempts) tries (last: \(lastProblem))", path: path(key))
    }

    /// Where an error points: the object's place in the vault, or the vault.
    private func path(_ key: String?) -> String { key.map { "\(location)/\($0)" } ?? location }

    private func describe(_ r: HTTPClient.Response) -> String {
        let (code, message) = S3XML.error(r.body)
        var s = "HTTP \(r.status)"
        if let code { s += " \(code)" }
        if let message, !message.isEmpty { s += ": \(message)" }
        return s
    }

    private func failure(_ r: HTTPClient.Response, key: String?, doing: String) -> DiskVaultError {
        let (code, _) = S3XML.error(r.body)
        switch (r.status, code) {
        case (403, _), (401, _), (_, "InvalidAccessKeyId"?), (_, "SignatureDoesNotMatch"?), (_, "AccessDenied"?):
            return DiskVaultError(
                .permission, "\(doing): access denied by the object store (\(describe(r))); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                path: location)
        case (404, "NoSuchBucket"?):
            return DiskVaultError(.notFound, "\(doing): the bucket \(s3.bucket) does not exist", path: location)
        case (404, _):
            return DiskVaultError(.notFound, "does not exist", path: path(key))
        default:
            return DiskVaultError(.io, "\(doing): the object store refused it (\(describe(r)))", path: path(key))
        }
    }

    // MARK: the container

    public func prepareNewVault() throws(DiskVaultError) {
        let bucket = try send("HEAD", nil, accept: [200, 404], doing: "cannot look for the bucket")
        if bucket.response.status == 404 {
            // Made by this run, or by a rival's meanwhile (409 BucketAlreadyOwnedByYou / 200): either way there.
            let made = try send("PUT", nil, accept: [200, 409], doing: "cannot create the bucket \(s3.bucket)")
            if made.response.status == 409, S3XML.error(made.response.body).code == "BucketAlreadyExists" {
                throw DiskVaultError(.permission, "the bucket \(s3.bucket) exists and belongs to someone else", path: location)
            }
        }
        if try head("vault.json") != nil {
            throw DiskVaultError(.alreadyExists, "a vault already exists here", path: location)
        }
        // S3 has nothing an interrupted create leaves (vault.json is its first and last object): anything here
        // is someone else's.
        let some = try listPage(prefix: s3.prefix.isEmpty ? "" : "\(s3.prefix)/", delimiter: nil, token: nil, maxKeys: 1)
        if let first = some.objects.first {
            throw DiskVaultError(.alreadyExists, "the place holds other objects (\(first.key)); give an empty prefix for a new vault", path: location)
        }
    }

    public func containerExists() throws(DiskVaultError) -> Bool {
        let bucket = try send("HEAD", nil, accept: [200, 404], doing: "cannot look for the bucket")
        guard bucket.response.status == 200 else { return false }
        return !(try listPage(prefix: s3.prefix.isEmpty ? "" : "\(s3.prefix)/", delimiter: nil, token: nil, maxKeys: 1).objects.isEmpty)
    }

    // MARK: objects

    public func putIfAbsent(_ key: String, _ parts: [UnsafeRawBufferPointer], durable: Bool) throws(DiskVaultError) -> Bool {
        try conditionalPut(key, body: .bytes(parts))
    }

    /// PUT with `If-None-Match: *`: 412 when the key exists. A try that may have reached the store before a
    /// retry leaves its own object behind, answered 412 the next time: its token says it is this put's.
    func conditionalPut(_ key: String, body: HTTPClient.Body) throws(DiskVaultError) -> Bool {
        let token = randomHex(8)
        let sent = try send(
            "PUT", key, headers: ["If-None-Match: *", "x-amz-meta-dv-put: \(token)", "Content-Type: application/octet-stream"],
            body: body, accept: [200, 201, 204, 409, 412], doing: "cannot store")
        if sent.response.status < 300 { return true }
        guard sent.retried else { return false }
        let found = try send("HEAD", key, accept: [200, 404], doing: "cannot look up")
        return found.response.headers["x-amz-meta-dv-put"] == token
    }

    public func replace(_ key: String, _ bytes: [UInt8]) throws(DiskVaultError) {
        try bytes.withBytes { (b) throws(DiskVaultError) in
            _ = try send("PUT", key, headers: ["Content-Type: application/octet-stream"], body: .bytes([b]), accept: [200, 201, 204], doing: "cannot store")
        }
    }

    public func replaceBlob(_ key: String, _ blob: UnsafeRawBufferPointer) throws(DiskVaultError) {
        _ = try send("PUT", key, headers: ["Content-Type: application/octet-stream"], body: .bytes([blob]), accept: [200, 201, 204], doing: "cannot store")
    }

    public func get(_ key: String, limit: Int) throws(DiskVaultError) -> [UInt8] {
        do {
            return try send("GET", key, sink: .collect(limit: limit), doing: "cannot read").response.body
        } catch where error.code == .corrupt {
            throw DiskVaultError(.corrupt, "object is larger than the \(limit) bytes allowed", path: path(key))
        }
    }

    public func read(
        _ key: String, into destination: (Int) -> UnsafeMutableRawBufferPointer
    ) throws(DiskVaultError) -> UnsafeRawBufferPointer {
        var given: UnsafeMutableRawBufferPointer?
        var announced = 0
        let got: Outcome
        do {
            got = try withoutActuallyEscaping(destination) { (destination) throws(DiskVaultError) -> Outcome in
                try send("GET", key, sink: .buffer({ n in
                    announced = n
                    if given == nil { given = destination(n) }
                    return given!
                }), doing: "cannot read")
            }
        } catch where error.code == .corrupt {
            throw DiskVaultError(.corrupt, "object is \(announced) bytes, more than the \(given?.count ?? 0) it may be", path: path(key))
        }
        guard let buffer = given else {
            // An empty object: no body arrived to ask for a buffer.
            return UnsafeRawBufferPointer(UnsafeMutableRawBufferPointer(rebasing: destination(0)[0..<0]))
        }
        guard got.response.bufferCount == announced else {
            throw DiskVaultError(.io, "cannot read: the object store sent \(got.response.bufferCount) of \(announced) bytes", path: path(key))
        }
        return UnsafeRawBufferPointer(rebasing: buffer[0..<got.response.bufferCount])
    }

    public func head(_ key: String) throws(DiskVaultError) -> UInt64? {
        let r = try send("HEAD", key, accept: [200, 404], doing: "cannot look up").response
        guard r.status == 200 else { return nil }
        guard let size = r.headers["content-length"].flatMap(UInt64.init) else {
            throw DiskVaultError(.io, "cannot look up: the object store gave no size", path: path(key))
        }
        return size
    }

    public func list(_ prefix: String) throws(DiskVaultError) -> [String] {
        let full = objectKey(prefix) + "/"
        var names = Set<String>()
        try forEachPage(prefix: full, delimiter: "/") { page in
            for o in page.objects where o.key.hasPrefix(full) { names.insert(String(o.key.dropFirst(full.count))) }
            for p in page.commonPrefixes where p.hasPrefix(full) {
                var name = String(p.dropFirst(full.count))
                if name.hasSuffix("/") { name.removeLast() }
                names.insert(name)
            }
        }
        // Hidden names are left out, as every backend leaves them out; so are names with a slash (a key the
        // store put under another folder) and, being hidden, "." and "..".
        return names.filter { !$0.isEmpty && !$0.hasPrefix(".") && !$0.contains("/") }.sorted()
    }

    typealias ListPage = (objects: [S3XML.Listing.Object], commonPrefixes: [String], isTruncated: Bool, nextToken: String?, serverTime: Double?)

    /// The most bytes one page of a listing may have: 1000 keys of S3's longest (1024 bytes) with their
    /// fields fit in under 2 MiB.
    static let listingLimit = 4 << 20
    /// Pages in a row that list nothing after which a listing is taken to never end.
    static let emptyPagesLimit = 64

    /// Every page of the listing of `prefix`, in order. A listing that would never end (a continuation token
    /// given twice, or page after page of nothing) is an error, never a hang.
    func forEachPage(prefix: String, delimiter: String?, _ body: (ListPage) throws(DiskVaultError) -> Void) throws(DiskVaultError) {
        var token: String?
        var tokens = Set<String>()
        var emptyPages = 0
        while true {
            let page = try listPage(prefix: prefix, delimiter: delimiter, token: token, maxKeys: 1000)
            try body(page)
            guard page.isTruncated, let next = page.nextToken else { return }
            guard tokens.insert(next).inserted else {
                throw DiskVaultError(.corrupt, "cannot list \(prefix): the object store gave continuation token \"\(next.prefix(64))\" again, so its listing would never end", path: location)
            }
            emptyPages = page.objects.isEmpty && page.commonPrefixes.isEmpty ? emptyPages + 1 : 0
            guard emptyPages < Self.emptyPagesLimit else {
                throw DiskVaultError(.corrupt, "cannot list \(prefix): the object store gave \(emptyPages) pages in a row that list nothing, so its listing would never end", path: location)
            }
            token = next
        }
    }

    /// One page of ListObjectsV2 (with the server's clock, from its Date header).
    func listPage(prefix: String, delimiter: String?, token: String?, maxKeys: Int) throws(DiskVaultError) -> ListPage {
        var query: [(String, String)] = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(maxKeys))]
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let token { query.append(("continuation-token", token)) }
        let doing = "cannot list \(prefix.isEmpty ? "the bucket" : prefix)"
        let r: HTTPClient.Response
        do {
            r = try send("GET", nil, query: query, sink: .collect(limit: Self.listingLimit), doing: doing).response
        } catch where error.code == .corrupt {
            throw DiskVaultError(.corrupt, "\(doing): the object store's answer is larger than \(Self.listingLimit >> 20) MiB, more than a page of 1000 keys can be", path: location)
        }
        guard S3XML.isListing(r.body) else {
            throw DiskVaultError(.corrupt, "\(doing): the object store's answer is not a listing (no ListBucketResult)", path: location)
        }
        let l = S3XML.listing(r.body)
        if l.isTruncated && l.nextToken == nil {
            throw DiskVaultError(.corrupt, "\(doing): the object store says there is more but gives no continuation token", path: location)
        }
        return (l.objects, l.commonPrefixes, l.isTruncated, l.nextToken, r.headers["date"].flatMap(S3XML.parseHTTPDate))
    }

    /// DeleteObjects (POST ?delete), a thousand keys a request, quiet: the answer lists only what failed. A
    /// retry is safe: deleting what is gone is success.
    public func delete(batch keys: [String]) throws(DiskVaultError) -> [(key: String, problem: String)] {
        var failed: [(key: String, problem: String)] = []
        var start = 0
        while start < keys.count {
            let part = keys[start..<min(keys.count, start + 1000)]
            start += part.count
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
            for key in part { xml += "<Object><Key>\(S3XML.escape(objectKey(key)))</Key></Object>" }
            xml += "</Delete>"
            let body = Array(xml.utf8)
            let md5 = Data(MessageDigest.md5(body)).base64EncodedString()
            var sent: Result<Outcome, DiskVaultError> = .failure(DiskVaultError(.io, "not sent"))
            body.withUnsafeBytes { b in
                do throws(DiskVaultError) {
                    sent = .success(try send("POST", nil, query: [("delete", "")], headers: ["Content-MD5: \(md5)", "Content-Type: application/xml"],
                                             body: .bytes([b]), sink: .collect(limit: 4 << 20), doing: "cannot delete \(part.count) objects"))
                } catch {
                    sent = .failure(error)
                }
            }
            let outcome = try sent.get()
            let prefix = s3.prefix.isEmpty ? "" : "\(s3.prefix)/"
            for e in S3XML.deleteErrors(outcome.response.body) where e.code != "NoSuchKey" {
                let key = e.key.hasPrefix(prefix) ? String(e.key.dropFirst(prefix.count)) : e.key
                failed.append((key, "the object store refused to delete it (\(e.code): \(e.message))"))
            }
        }
        return failed
    }

    public func listSizes(_ prefix: String) throws(DiskVaultError) -> [(name: String, size: UInt64)] {
        let full = objectKey(prefix) + "/"
        var out: [(name: String, size: UInt64)] = []
        try forEachPage(prefix: full, delimiter: "/") { page in
            for o in page.objects where o.key.hasPrefix(full) {
                let name = String(o.key.dropFirst(full.count))
                if !name.isEmpty, !name.hasPrefix("."), !name.contains("/") { out.append((name, o.size)) }
            }
        }
        return out.sorted { $0.name < $1.name }
    }

    public func delete(_ key: String) throws(DiskVaultError) {
        // A folder is no object: deleting one deletes nothing, as S3 answers 204 for a missing key.
        _ = try send("DELETE", key, accept: [200, 204, 404], doing: "cannot delete")
    }

    public func barrier() throws(DiskVaultError) {}

    public func makeReader(_ key: String) throws(DiskVaultError) -> any ObjectReader {
        guard let size = try head(key) else { throw DiskVaultError(.notFound, "does not exist", path: path(key)) }
        return S3ObjectReader(storage: self, key: key, size: size)
    }

    public func makeWriter(_ key: String) throws(DiskVaultError) -> any ObjectWriter {
        S3ObjectWriter(storage: self, key: key)
    }
}

/// Ranges of one object read by GET with a Range header.
final class S3ObjectReader: ObjectReader {
    let storage: S3Storage
    let key: String
    let size: UInt64

    init(storage: S3Storage, key: String, size: UInt64) {
        self.storage = storage
        self.key = key
        self.size = size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskVaultError) -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        let want = Int(min(UInt64(buffer.count), size - offset))
        let r = try storage.send(
            "GET", key, headers: ["Range: bytes=\(offset)-\(offset + UInt64(want) - 1)"],
            sink: .buffer({ _ in UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]) }), accept: [206, 200], doing: "cannot read"
        ).response
        // A store that ignores Range answers 200 with the whole object: only the wanted bytes are taken.
        guard r.status == 206, r.bufferCount == want else {
            throw DiskVaultError(.io, "cannot read: the object store answered a range of \(want) bytes with \(r.bufferCount) (HTTP \(r.status))", path: "\(storage.location)/\(key)")
        }
        return want
    }
}

/// An object gathered as it grows, in memory up to `S3Storage.writerMemory` and then in an unlinked file, and
/// put with a conditional PUT by `commitIfAbsent`: nothing is in the store before that, so a run that dies
/// leaves nothing behind.
final class S3ObjectWriter: ObjectWriter {
    private let storage: S3Storage
    private let key: String
    private var memory: [UInt8] = []
    private var file: FileDescriptor?
    private var finished = false
    private(set) var count: UInt64 = 0

    init(storage: S3Storage, key: String) {
        self.storage = storage
        self.key = key
    }

    deinit { abandon() }

    func append(_ bytes: UnsafeRawBufferPointer) throws(DiskVaultError) {
        guard !finished else { throw DiskVaultError(.io, "object writer used after it ended", path: "\(storage.location)/\(key)") }
        if file == nil && memory.count + bytes.count > S3Storage.writerMemory {
            let spill = try FileDescriptor.anonymousTemporary(doing: "cannot keep an object being written to \(storage.location)")
            try memory.withBytes { (b) throws(DiskVaultError) in try spill.writeAll([b]) }
            memory = []
            file = spill
        }
        if let file { try file.writeAll([bytes]) } else { memory.append(contentsOf: bytes) }
        count += UInt64(bytes.count)
    }

    func commitIfAbsent(durable: Bool) throws(DiskVaultError) -> Bool {
        guard !finished else { throw DiskVaultError(.io, "object writer used after it ended", path: "\(storage.location)/\(key)") }
        finished = true
        defer { abandon() }
        if let file { return try storage.conditionalPut(key, body: .file(file.fd, count)) }
        return try memory.withBytes { (b) throws(DiskVaultError) in try storage.conditionalPut(key, body: .bytes([b])) }
    }

    func abandon() {
        finished = true
        memory = []
        if let file { try? file.close() }
        file = nil
    }
}
