internal import CCurl
import Foundation
import Synchronization

/// HTTP(S) requests through libcurl: the one place the object-store backend meets the network. Requests are
/// signed with AWS Signature V4 by libcurl itself (`CURLOPT_AWS_SIGV4`) when credentials are given; easy handles
/// are pooled, so connections are reused across requests and threads. Every request has bounded time (connect,
/// and no progress for `stallSeconds`), and every response body a bound on what is kept.
final class HTTPClient: @unchecked Sendable {
    struct Credentials: Sendable {
        var accessKey: String
        var secretKey: String
        var region: String
    }

    /// What a request sends as its body.
    enum Body {
        case none
        /// Bytes in memory, in pieces sent one after another.
        case bytes([UnsafeRawBufferPointer])
        /// `length` bytes of an open file from offset 0.
        case file(Int32, UInt64)
    }

    /// Where a response's body goes.
    enum Sink {
        /// Kept, up to `limit` bytes (more is an error, and the transfer stops).
        case collect(limit: Int)
        /// Into the buffer `destination` gives for the length the server announced.
        case buffer((Int) -> UnsafeMutableRawBufferPointer)
        /// Discarded (HEAD, DELETE, a PUT's answer), apart from an error's body.
        case discard
    }

    struct Response {
        var status: Int
        /// Header names in lower case; the last value of each.
        var headers: [String: String]
        /// The body kept by `.collect`, or an error's body (at most 64 KiB) whatever the sink.
        var body: [UInt8]
        /// Bytes written into the `.buffer` sink's buffer.
        var bufferCount: Int
    }

    /// A transfer that failed below HTTP (connect, reset, timeout) or that the sink refused.
    struct TransferError: Error {
        var code: Int32
        var message: String
        /// Worth trying again: the network or the server, not this request.
        var transient: Bool
        /// The body was larger than the sink allows.
        var tooLarge: Bool
    }

    let credentials: Credentials?
    let connectSeconds: Int
    let stallSeconds: Int
    /// An idle easy handle (with its open connections); used by one thread at a time.
    private struct Idle: @unchecked Sendable { let handle: UnsafeMutableRawPointer }
    private let pool = Mutex<[Idle]>([])

    private static let initialized: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    init(credentials: Credentials?, connectSeconds: Int = 10, stallSeconds: Int = 60) {
        _ = Self.initialized
        self.credentials = credentials
        self.connectSeconds = connectSeconds
        self.stallSeconds = stallSeconds
    }

    deinit {
        for idle in pool.withLock({ $0 }) { curl_easy_cleanup(idle.handle) }
    }

    private func take() -> UnsafeMutableRawPointer? {
        if let idle = pool.withLock({ $0.popLast() }) {
            curl_easy_reset(idle.handle)
            return idle.handle
        }
        return curl_easy_init()
    }

    private func give(_ h: UnsafeMutableRawPointer) {
        let idle = Idle(handle: h)
        pool.withLock { $0.append(idle) }
    }

    /// One request, once: no retry here (see `S3Storage.withRetries`).
    func perform(method: String, url: String, headers: [String] = [], body: Body = .none, sink: Sink = .discard) throws(TransferError) -> Response {
        guard let h = take() else { throw TransferError(code: -1, message: "cannot create an HTTP handle", transient: false, tooLarge: false) }
        let context = TransferContext(body: body, sink: sink)
        let unmanaged = Unmanaged.passRetained(context)
        defer {
            unmanaged.release()
            give(h)
        }
        let ctx = unmanaged.toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        var all = headers
        if credentials != nil {
            // The payload hash Signature V4 signs; libcurl 7.88 sends none of its own, and stores that check
            // signatures refuse a signed upload without it. Blobs carry their own digests (and seals).
            all.append("x-amz-content-sha256: UNSIGNED-PAYLOAD")
        } else {
            // No "Expect: 100-continue" round trip before a body. (Signed, libcurl would sign the emptied header
            // it never sends: there the wait for 100 is only cut short, below.)
            all.append("Expect:")
        }
        for header in all { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }

        _ = dv_curl_set_string(h, CURLOPT_URL, url)
        _ = dv_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        _ = dv_curl_set_long(h, CURLOPT_CONNECTTIMEOUT, connectSeconds)
        // A transfer that moves no byte for stallSeconds is a timeout, whatever its size.
        _ = dv_curl_set_long(h, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = dv_curl_set_long(h, CURLOPT_LOW_SPEED_TIME, stallSeconds)
        _ = dv_curl_set_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        _ = dv_curl_set_long(h, CURLOPT_FOLLOWLOCATION, 0)
        _ = dv_curl_set_long(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 100)
        if let c = credentials {
            _ = dv_curl_set_string(h, CURLOPT_AWS_SIGV4, "aws:amz:\(c.region):s3")
            _ = dv_curl_set_string(h, CURLOPT_USERPWD, "\(c.accessKey):\(c.secretKey)")
        }
        _ = dv_curl_set_pointer(h, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        _ = dv_curl_set_callback(h, CURLOPT_HEADERFUNCTION, headerCallback)
        _ = dv_curl_set_pointer(h, CURLOPT_HEADERDATA, ctx)
        _ = dv_curl_set_callback(h, CURLOPT_WRITEFUNCTION, writeCallback)
        _ = dv_curl_set_pointer(h, CURLOPT_WRITEDATA, ctx)
        switch method {
        case "HEAD": _ = dv_curl_set_long(h, CURLOPT_NOBODY, 1)
        case "GET": break
        case "PUT", "POST":
            if method == "POST" { _ = dv_curl_set_string(h, CURLOPT_CUSTOMREQUEST, method) }
            _ = dv_curl_set_long(h, CURLOPT_UPLOAD, 1)
            _ = dv_curl_set_offset(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(context.bodyLength))
            _ = dv_curl_set_callback(h, CURLOPT_READFUNCTION, readCallback)
            _ = dv_curl_set_pointer(h, CURLOPT_READDATA, ctx)
        default: _ = dv_curl_set_string(h, CURLOPT_CUSTOMREQUEST, method)
        }
        let result = curl_easy_perform(h)
        var status = 0
        _ = dv_curl_get_long(h, CURLINFO_RESPONSE_CODE, &status)
        if context.tooLarge {
            throw TransferError(code: Int32(result.rawValue), message: "the answer is larger than allowed", transient: false, tooLarge: true)
        }
        guard result == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(result))
            let transient: Bool
            switch result {
            case CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING,
                CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST, CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM:
                transient = true
            default: transient = false
            }
            throw TransferError(code: Int32(result.rawValue), message: message, transient: transient, tooLarge: false)
        }
        return Response(status: status, headers: context.headers, body: context.kept, bufferCount: context.bufferCount)
    }
}

/// The state one transfer's callbacks share.
private final class TransferContext {
    let body: HTTPClient.Body
    let sink: HTTPClient.Sink
    let bodyLength: UInt64
    var sent: UInt64 = 0
    var status = 0
    var headers: [String: String] = [:]
    var kept: [UInt8] = []
    var buffer: UnsafeMutableRawBufferPointer?
    var bufferCount = 0
    var tooLarge = false

    init(body: HTTPClient.Body, sink: HTTPClient.Sink) {
        self.body = body
        self.sink = sink
        switch body {
        case .none: bodyLength = 0
        case .bytes(let parts): bodyLength = parts.reduce(0) { $0 + UInt64($1.count) }
        case .file(_, let length): bodyLength = length
        }
    }

    var isError: Bool { status >= 300 }

    func header(_ line: String) {
        if line.hasPrefix("HTTP/") {
            // A new response (after a 100 Continue, say): what came before belongs to the last one.
            let fields = line.split(separator: " ", maxSplits: 2)
            status = fields.count > 1 ? Int(fields[1]) ?? 0 : 0
            headers = [:]
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        headers[name] = value
    }

    /// Takes `bytes` of the body; false stops the transfer.
    func take(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if isError {
            // An error's body is kept for its code and message, and no more than that needs.
            let room = max(0, (64 << 10) - kept.count)
            kept.append(contentsOf: bytes.prefix(room))
            return true
        }
        switch sink {
        case .discard: return true
        case .collect(let limit):
            guard kept.count + bytes.count <= limit else {
                tooLarge = true
                return false
            }
            if kept.isEmpty, let announced = headers["content-length"].flatMap(Int.init), announced <= limit {
                kept.reserveCapacity(announced)
            }
            kept.append(contentsOf: bytes)
            return true
        case .buffer(let destination):
            if buffer == nil {
                guard let announced = headers["content-length"].flatMap(Int.init), announced >= 0 else {
                    tooLarge = true
                    return false
                }
                buffer = destination(announced)
            }
            guard let buffer, bufferCount + bytes.count <= buffer.count else {
                tooLarge = true
                return false
            }
            UnsafeMutableRawBufferPointer(rebasing: buffer[bufferCount..<bufferCount + bytes.count]).copyMemory(from: bytes)
            bufferCount += bytes.count
            return true
        }
    }

    /// Fills `into` with the next bytes of the body; 0 at its end.
    func give(_ into: UnsafeMutableRawBufferPointer) -> Int {
        switch body {
        case .none: return 0
        case .bytes(let parts):
            var skip = sent, written = 0
            for part in parts {
                if skip >= UInt64(part.count) {
                    skip -= UInt64(part.count)
                    continue
                }
                let from = Int(skip)
                let n = min(part.count - from, into.count - written)
                UnsafeMutableRawBufferPointer(rebasing: into[written..<written + n])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: part[from..<from + n]))
                written += n
                skip = 0
                if written == into.count { break }
            }
            sent += UInt64(written)
            return written
        case .file(let fd, let length):
            guard sent < length else { return 0 }
            let want = Int(min(UInt64(into.count), length - sent))
            let n = pread(fd, into.baseAddress, want, off_t(sent))
            guard n > 0 else { return -1 }
            sent += UInt64(n)
            return n
        }
    }
}

private let headerCallback: dv_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let n = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue().header(line)
    return n
}

private let writeCallback: dv_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return 0 }
    let n = size * count
    let ok = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue().take(UnsafeRawBufferPointer(start: data, count: n))
    return ok ? n : 0
}

private let readCallback: dv_curl_data_callback = { data, size, count, context in
    guard let data, let context else { return Int(CURL_READFUNC_ABORT) }
    let n = Unmanaged<TransferContext>.fromOpaque(context).takeUnretainedValue().give(UnsafeMutableRawBufferPointer(start: data, count: size * count))
    return n < 0 ? Int(CURL_READFUNC_ABORT) : n
}
