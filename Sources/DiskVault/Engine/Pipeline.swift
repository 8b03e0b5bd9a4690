import Foundation

/// An ordered parallel pipeline: one producer (the calling thread) → a fixed set of worker threads →
/// results consumed strictly in production order. At most `depth` items wait between producer and workers,
/// so memory is bounded whatever the length of the input. The first error stops every stage and is rethrown.
public enum Pipeline {
    public static func run<Item, Output>(
        workers: Int,
        depth: Int,
        produce: (_ emit: (Item) throws -> Void) throws -> Void,
        makeWorker: @escaping () -> (Item) throws -> Output,
        consume: @escaping (Output) throws -> Void,
        discard: @escaping (Item) -> Void = { _ in }
    ) throws {
        let state = PipelineState<Item, Output>(depth: max(1, depth), consume: consume, discard: discard)
        var threads: [Thread] = []
        let done = DispatchGroup()
        for n in 0..<max(1, workers) {
            done.enter()
            let box = UncheckedBox(makeWorker)
            let thread = Thread { [state] in
                defer { done.leave() }
                let work = box.value()
                state.workLoop(work)
            }
            thread.name = "diskvault-worker-\(n)"
            thread.stackSize = 1 << 20
            threads.append(thread)
            thread.start()
        }
        do {
            var sequence = 0
            try produce { item throws in
                try state.push(sequence, item)
                sequence += 1
            }
            state.finishProducing()
        } catch {
            state.fail(error)
        }
        done.wait()
        if let error = state.firstError { throw error }
    }
}

/// Wraps a value whose thread-safety the pipeline guarantees by construction (handed over, never shared).
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A cancellation the pipeline raises in the producer when a worker failed first.
struct PipelineCancelled: Error {}

final class PipelineState<Item, Output>: @unchecked Sendable {
    private let lock = NSCondition()
    private var queue: [(Int, Item)] = []
    private var head = 0
    private let depth: Int
    private var producing = true
    private(set) var firstError: Error?
    // Reorder buffer: results that finished ahead of their turn.
    private var pending: [Int: Output] = [:]
    private var nextToConsume = 0
    private let consume: (Output) throws -> Void
    private let consumeLock = NSLock()
    /// Releases what an item holds (a pooled buffer) when a failure drops it unprocessed.
    private let discard: (Item) -> Void

    init(depth: Int, consume: @escaping (Output) throws -> Void, discard: @escaping (Item) -> Void) {
        self.depth = depth
        self.consume = consume
        self.discard = discard
    }

    func push(_ sequence: Int, _ item: Item) throws {
        lock.lock()
        while queue.count - head >= depth && firstError == nil { lock.wait() }
        if firstError != nil {
            lock.unlock()
            discard(item)
            throw PipelineCancelled()
        }
        queue.append((sequence, item))
        lock.broadcast()
        lock.unlock()
    }

    func finishProducing() {
        lock.lock()
        producing = false
        lock.broadcast()
        lock.unlock()
    }

    func fail(_ error: Error) {
        lock.lock()
        if firstError == nil { firstError = error }
        producing = false
        let dropped = queue[head...].map(\.1)
        queue.removeAll()
        head = 0
        lock.broadcast()
        lock.unlock()
        dropped.forEach(discard)
    }

    private func pop() -> (Int, Item)? {
        lock.lock()
        defer { lock.unlock() }
        while head == queue.count && producing && firstError == nil { lock.wait() }
        if firstError != nil || head == queue.count { return nil }
        let item = queue[head]
        head += 1
        if head > 1024 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        lock.broadcast()
        return item
    }

    func workLoop(_ work: (Item) throws -> Output) {
        while let (sequence, item) = pop() {
            do {
                let output = try work(item)
                try deliver(sequence, output)
            } catch {
                fail(error)
                return
            }
        }
    }

    private var failed: Bool {
        lock.lock()
        defer { lock.unlock() }
        return firstError != nil
    }

    private func deliver(_ sequence: Int, _ output: Output) throws {
        consumeLock.lock()
        defer { consumeLock.unlock() }
        pending[sequence] = output
        while let next = pending.removeValue(forKey: nextToConsume) {
            if failed { return }
            try consume(next)
            nextToConsume += 1
        }
    }
}
