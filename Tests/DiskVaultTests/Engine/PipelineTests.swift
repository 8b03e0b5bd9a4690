@testable import DiskVault
import Foundation
import XCTest

final class PipelineTests: XCTestCase {
    func testResultsArriveInOrderWithEveryWorkerBusy() throws {
        var seen: [Int] = []
        let threads = LockedSet()
        try Pipeline.run(
            workers: 4, depth: 3,
            produce: { emit in for i in 0..<500 { try emit(i) } },
            makeWorker: {
                return { (i: Int) -> Int in
                    threads.insert("\(pthread_self())")
                    if i % 7 == 0 { usleep(200) }
                    return i * 2
                }
            },
            consume: { seen.append($0) })
        XCTAssertEqual(seen, (0..<500).map { $0 * 2 })
        XCTAssertGreaterThan(threads.count, 1)
    }

    struct Boom: Error {}

    func testFirstWorkerErrorStopsTheProducerAndIsRethrown() {
        let produced = LockedCounter()
        XCTAssertThrowsError(
            try Pipeline.run(
                workers: 2, depth: 2,
                produce: { emit in
                    for i in 0..<100_000 {
                        produced.increment()
                        try emit(i)
                    }
                },
                makeWorker: { { (i: Int) throws -> Int in if i == 50 { throw Boom() }; return i } },
                consume: { _ in })
        ) { XCTAssertTrue($0 is Boom) }
        XCTAssertLessThan(produced.value, 1000)
    }

    func testDroppedItemsAreHandedBackSoABoundedPoolNeverDeadlocks() {
        let pool = BufferPool(count: 4, capacity: 16)
        XCTAssertThrowsError(
            try Pipeline.run(
                workers: 1, depth: 2,
                produce: { emit in for _ in 0..<1000 { try emit(pool.take()) } },
                makeWorker: { { (b: ByteBuffer) throws -> Int in pool.give(b); throw Boom() } },
                consume: { (_: Int) in },
                discard: { pool.give($0) }))
        // Every buffer came back.
        for _ in 0..<4 { _ = pool.take() }
    }

    func testProducerErrorIsRethrown() {
        XCTAssertThrowsError(
            try Pipeline.run(
                workers: 2, depth: 2,
                produce: { emit in try emit(1); throw Boom() },
                makeWorker: { { (i: Int) -> Int in i } },
                consume: { _ in })
        ) { XCTAssertTrue($0 is Boom) }
    }
}

final class LockedSet: @unchecked Sendable {
    private let lock = NSLock()
    private var set = Set<String>()
    func insert(_ s: String) { lock.lock(); set.insert(s); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return set.count }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}
