import Histogram
import MQTTWire
import NIOCore

/// What a connection does once it is connected.
enum ClientRole: Sendable {
    case publisher(Int)
    case subscriber(Int)
    case idle(Int)
}

/// Sent by a connection when it is ready for the run: connected and, for a subscriber, subscribed.
struct ClientReady: Sendable {}

/// Why a connection never became ready. `unsupported` marks a refusal of a feature the scenario needs (a shared
/// subscription), which is reported as such rather than as a failure.
struct ClientFailure: Error, CustomStringConvertible {
    var description: String
    var unsupported = false
}

/// One MQTT connection of the load generator: a publisher, a subscriber or an idle client.
///
/// It lives on its channel's event loop and shares that loop's `LoopState`. Publishers encode PUBLISH packets
/// straight into one buffer per batch and flush once; subscribers acknowledge in one write per read batch.
///
/// Bytes are parsed here with `MQTTPacketParser` rather than by a `ByteToMessageHandler` in front: at a million
/// packets a second, passing each one down the pipeline in an `NIOAny` costs the generator more than parsing it.
final class BenchClient: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let role: ClientRole
    private let state: LoopState
    private let configuration: BenchConfiguration
    private let clientIdentifier: String
    private let ready: EventLoopPromise<ClientReady>
    private var isReady = false
    private var isClosing = false
    private var context: ChannelHandlerContext?
    private var readyTimeout: Scheduled<Void>?
    private var parser: MQTTPacketParser
    /// Bytes of a packet not yet complete at the end of the last read.
    private var partial: ByteBuffer?

    // MARK: Publisher state

    private var template: MQTTPacket.Publish
    private let publisherIndex: UInt32
    private let limit: Int?
    private(set) var sent = 0
    private(set) var acknowledged = 0
    private(set) var inflight = 0
    private var nextPacketIdentifier: UInt16 = 1
    private var isPublishing = false
    /// True while the publisher waits in its loop's next publishing round.
    private var pumpScheduled = false
    private var wantsPump = false
    /// Fixed-rate mode: when message 0 is due, and the nanoseconds between two messages.
    private var rateStart: UInt64 = 0
    private var rateInterval: Double = 0
    private var rateTimer: Scheduled<Void>?

    // MARK: Subscriber state

    let firstPublisher: Int
    private(set) var trackers: [SequenceTracker]
    private var pendingAcknowledgements: ByteBuffer?
    /// Deliveries per tracker slot not yet added to the loop's ledger, and the slots that have some.
    private var pendingDeliveries: [Int] = []
    private var touchedSlots: [Int] = []

    init(
        role: ClientRole,
        state: LoopState,
        configuration: BenchConfiguration,
        ready: EventLoopPromise<ClientReady>
    ) {
        self.role = role
        self.state = state
        self.configuration = configuration
        self.ready = ready
        self.parser = MQTTPacketParser(version: configuration.version)
        let run = state.runIdentifier
        switch role {
        case .publisher(let index):
            self.clientIdentifier = "pb\(run)-p\(index)"
            self.publisherIndex = UInt32(index)
            self.limit = configuration.messageLimit(publisher: index)
            self.template = MQTTPacket.Publish(
                topic: configuration.publishTopic(publisher: index),
                payload: ByteBuffer(),
                qos: configuration.qos
            )
            self.firstPublisher = 0
            self.trackers = []
        case .subscriber(let index):
            self.clientIdentifier = "pb\(run)-s\(index)"
            self.publisherIndex = 0
            self.limit = nil
            self.template = MQTTPacket.Publish(topic: "", payload: ByteBuffer())
            let range = configuration.publisherRange(subscriber: index)
            self.firstPublisher = range.lowerBound
            self.trackers = Array(repeating: SequenceTracker(), count: range.count)
            self.pendingDeliveries = Array(repeating: 0, count: range.count)
        case .idle(let index):
            self.clientIdentifier = "pb\(run)-i\(index)"
            self.publisherIndex = 0
            self.limit = nil
            self.template = MQTTPacket.Publish(topic: "", payload: ByteBuffer())
            self.firstPublisher = 0
            self.trackers = []
        }
        state.register(self)
    }

    var isPublisher: Bool {
        if case .publisher = role { return true }
        return false
    }

    /// True once the publisher has sent its whole `--messages` budget.
    var hasFinished: Bool {
        guard let limit else { return false }
        return sent >= limit
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Added after a WebSocket upgrade: the connection is up already.
        if context.channel.isActive { self.start(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopPublishing()
        self.readyTimeout?.cancel()
        self.failReady(ClientFailure(description: "connection closed before it was ready"))
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        self.start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        let connect = MQTTPacket.Connect(
            protocolVersion: configuration.version,
            clientIdentifier: clientIdentifier,
            cleanStart: true,
            keepAlive: configuration.keepAlive
        )
        self.send(.connect(connect), flush: true)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.readyTimeout = context.eventLoop.scheduleTask(in: .milliseconds(Int64(configuration.connectTimeout * 1000))) {
            let client = bound.value
            client.failReady(ClientFailure(description: "no answer from the broker within the connect timeout"))
            client.context?.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if isReady && !isClosing {
            state.disconnects += 1
        }
        self.stopPublishing()
        self.failReady(ClientFailure(description: "the broker closed the connection", unsupported: isSharedSubscriber))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        state.noteError("\(clientIdentifier): \(error)")
        self.failReady(ClientFailure(description: "\(error)"))
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.pump()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = Self.unwrapInboundIn(data)
        if var partial {
            self.partial = nil
            partial.writeBuffer(&bytes)
            bytes = partial
        }
        do {
            while let packet = try parser.parse(&bytes) {
                self.handle(packet)
            }
        } catch {
            self.errorCaught(context: context, error: error)
            return
        }
        if bytes.readableBytes > 0 {
            bytes.discardReadBytes()
            self.partial = bytes
        }
    }

    private func handle(_ packet: MQTTPacket) {
        switch packet {
        case .publish(let publish):
            self.receive(publish)
        case .puback:
            self.inflight -= 1
            self.acknowledged += 1
            self.wantsPump = true
        case .pubrec(let ack):
            self.queueAcknowledgement(.pubrel(MQTTPacket.PubAck(packetIdentifier: ack.packetIdentifier)))
        case .pubcomp:
            self.inflight -= 1
            self.acknowledged += 1
            self.wantsPump = true
        case .pubrel(let ack):
            self.queueAcknowledgement(.pubcomp(MQTTPacket.PubAck(packetIdentifier: ack.packetIdentifier)))
        case .connack(let connack):
            self.connected(connack)
        case .suback(let suback):
            self.subscribed(suback)
        case .disconnect(let disconnect):
            state.noteError("\(clientIdentifier): the broker sent DISCONNECT \(disconnect.reasonCode)")
            self.failReady(
                ClientFailure(
                    description: "the broker sent DISCONNECT \(disconnect.reasonCode)",
                    unsupported: isSharedSubscriber
                )
            )
        case .pingresp, .pingreq, .connect, .subscribe, .unsubscribe, .unsuback, .auth:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !touchedSlots.isEmpty {
            state.ledger.add(first: firstPublisher, slots: touchedSlots, counts: pendingDeliveries)
            for slot in touchedSlots { pendingDeliveries[slot] = 0 }
            touchedSlots.removeAll(keepingCapacity: true)
        }
        if let acknowledgements = pendingAcknowledgements, acknowledgements.readableBytes > 0 {
            self.pendingAcknowledgements = nil
            context.writeAndFlush(Self.wrapOutboundOut(acknowledgements), promise: nil)
        }
        if wantsPump {
            self.wantsPump = false
            self.pump()
        }
        context.fireChannelReadComplete()
    }

    // MARK: Connecting

    private var isSharedSubscriber: Bool {
        if case .subscriber = role, configuration.scenario == .shared { return true }
        return false
    }

    private func connected(_ connack: MQTTPacket.ConnAck) {
        guard !connack.reasonCode.isFailure else {
            self.failReady(ClientFailure(description: "CONNACK refused with \(connack.reasonCode)"))
            self.context?.close(promise: nil)
            return
        }
        guard case .subscriber(let index) = role else {
            self.succeedReady()
            return
        }
        if isSharedSubscriber && connack.properties.sharedSubscriptionAvailable == 0 {
            self.failReady(
                ClientFailure(description: "the broker does not offer shared subscriptions", unsupported: true)
            )
            self.context?.close(promise: nil)
            return
        }
        let subscribe = MQTTPacket.Subscribe(
            packetIdentifier: 1,
            subscriptions: [
                MQTTPacket.TopicSubscription(
                    filter: configuration.subscriptionFilter(subscriber: index),
                    qos: configuration.qos
                )
            ]
        )
        self.send(.subscribe(subscribe), flush: true)
    }

    private func subscribed(_ suback: MQTTPacket.SubAck) {
        if let code = suback.reasonCodes.first(where: { $0.isFailure }) ?? (suback.reasonCodes.isEmpty ? .unspecifiedError : nil) {
            self.failReady(
                ClientFailure(description: "SUBACK refused with \(code)", unsupported: isSharedSubscriber)
            )
            self.context?.close(promise: nil)
            return
        }
        self.succeedReady()
    }

    private func succeedReady() {
        guard !isReady else { return }
        self.isReady = true
        self.readyTimeout?.cancel()
        self.readyTimeout = nil
        self.ready.succeed(ClientReady())
    }

    private func failReady(_ failure: ClientFailure) {
        guard !isReady else { return }
        self.isReady = true
        self.isClosing = true
        self.readyTimeout?.cancel()
        self.readyTimeout = nil
        self.ready.fail(failure)
    }

    /// Sends DISCONNECT and closes; the connection is not counted as dropped by the broker.
    func close() -> EventLoopFuture<Void> {
        guard let context else { return state.eventLoop.makeSucceededVoidFuture() }
        self.isClosing = true
        self.stopPublishing()
        self.send(.disconnect(MQTTPacket.Disconnect()), flush: true)
        return context.close()
    }

    private func send(_ packet: MQTTPacket, flush: Bool) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        do {
            try buffer.writeMQTTPacket(packet, version: configuration.version)
        } catch {
            state.noteError("\(clientIdentifier): cannot encode \(packet.type): \(error)")
            return
        }
        if flush {
            context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
        } else {
            context.write(Self.wrapOutboundOut(buffer), promise: nil)
        }
    }

    private func queueAcknowledgement(_ packet: MQTTPacket) {
        if pendingAcknowledgements == nil {
            pendingAcknowledgements = context?.channel.allocator.buffer(capacity: 256)
        }
        do {
            try pendingAcknowledgements?.writeMQTTPacket(packet, version: configuration.version)
        } catch {
            state.noteError("\(clientIdentifier): cannot encode \(packet.type): \(error)")
        }
    }

    // MARK: Subscribing

    private func receive(_ publish: MQTTPacket.Publish) {
        let now = NIODeadline.now().uptimeNanoseconds
        state.delivered += 1
        state.lastDeliveryAt = now
        let payload = publish.payload
        let start = payload.readerIndex
        if payload.readableBytes >= BenchConfiguration.stampSize,
            let publisher = payload.getInteger(at: start, as: UInt32.self),
            let sequence = payload.getInteger(at: start + 4, as: UInt64.self),
            let sentAt = payload.getInteger(at: start + 12, as: UInt64.self)
        {
            state.recordLatency(now >= sentAt ? now - sentAt : 0)
            let slot = Int(publisher) - firstPublisher
            if slot >= 0 && slot < trackers.count {
                // Messages of one publisher arrive in order [MQTT-4.6.0-6]: every number up to the highest one
                // received is delivered or lost, so the highest is what moves the publisher's window.
                let highest = trackers[slot].highest
                trackers[slot].record(sequence)
                let advance = trackers[slot].highest - highest
                if advance > 0 {
                    if pendingDeliveries[slot] == 0 { touchedSlots.append(slot) }
                    pendingDeliveries[slot] += advance
                }
            } else {
                state.unexpected += 1
            }
        } else {
            state.unexpected += 1
        }
        switch publish.qos {
        case .atMostOnce:
            break
        case .atLeastOnce:
            if let identifier = publish.packetIdentifier {
                self.queueAcknowledgement(.puback(MQTTPacket.PubAck(packetIdentifier: identifier)))
            }
        case .exactlyOnce:
            if let identifier = publish.packetIdentifier {
                self.queueAcknowledgement(.pubrec(MQTTPacket.PubAck(packetIdentifier: identifier)))
            }
        }
    }

    // MARK: Publishing

    /// Starts publishing at `start` (monotonic nanoseconds); in fixed-rate mode the publisher's first message is
    /// due `offset` nanoseconds later so that publishers do not send in lockstep.
    func startPublishing(at start: UInt64, offset: UInt64) {
        guard isPublisher, context != nil else { return }
        self.isPublishing = true
        if let rate = configuration.rate {
            let perPublisher = rate / Double(configuration.publishers)
            self.rateInterval = 1_000_000_000 / perPublisher
            self.rateStart = start + offset
        }
        self.scheduleWakeUp(at: start)
    }

    func stopPublishing() {
        self.isPublishing = false
        self.stallTimer?.cancel()
        self.stallTimer = nil
        self.rateTimer?.cancel()
        self.rateTimer = nil
    }

    /// Delivery window: messages counted as gone for good (never delivered within `stallTimeout`), and the
    /// deliveries of this publisher's messages seen at the start of the current pump.
    private var forgiven = 0
    private var deliveredSeen = 0
    private var lastProgressAt: UInt64 = 0
    private static let stallTimeout: UInt64 = 500_000_000

    private var usesDeliveryWindow: Bool {
        configuration.rate == nil && configuration.window > 0
    }

    private var isBlockedByDeliveryWindow: Bool {
        usesDeliveryWindow
            && sent - forgiven - deliveredSeen / configuration.receiversPerMessage >= configuration.window
    }

    private var canSend: Bool {
        guard isPublishing else { return false }
        if let limit, sent >= limit { return false }
        if configuration.qos != .atMostOnce && inflight >= configuration.inflight { return false }
        return !isBlockedByDeliveryWindow
    }

    /// Reads this publisher's progress from the ledger. When the last messages sent were dropped by the broker
    /// no later one reveals it: after `stallTimeout` without progress what is outstanding is written off.
    private func refreshDeliveryWindow(now: UInt64) {
        guard usesDeliveryWindow else { return }
        self.noteDelivered(state.ledger.delivered(publisher: Int(publisherIndex)), now: now)
        if isBlockedByDeliveryWindow && lastProgressAt != now && now - lastProgressAt > Self.stallTimeout {
            forgiven = sent - deliveredSeen / configuration.receiversPerMessage
            lastProgressAt = now
        }
    }

    private func noteDelivered(_ delivered: Int, now: UInt64) {
        if delivered != deliveredSeen || lastProgressAt == 0 {
            deliveredSeen = delivered
            lastProgressAt = now
        }
    }

    /// The window is full: wait in the ledger for the next delivery, and look again after `stallTimeout`.
    private func parkOnDeliveryWindow() {
        guard let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let delivered = state.ledger.park(bound, publisher: Int(publisherIndex), seen: deliveredSeen)
        if delivered != deliveredSeen {
            // Deliveries arrived between reading the ledger and parking: go on at once.
            self.schedulePump()
            return
        }
        if stallTimer == nil {
            stallTimer = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(Self.stallTimeout) + 1_000_000)) {
                let client = bound.value
                client.stallTimer = nil
                client.pump()
            }
        }
    }

    private var stallTimer: Scheduled<Void>?

    /// Called by the ledger on this client's loop when one of its messages was delivered.
    func wake() {
        self.pump()
    }

    private func scheduleWakeUp(at deadline: UInt64) {
        guard rateTimer == nil, let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.rateTimer = context.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(deadline)) {
            let client = bound.value
            client.rateTimer = nil
            client.pump()
        }
    }

    /// Asks the loop for another pump in its next publishing round, after the loop has handled I/O.
    private func schedulePump() {
        guard !pumpScheduled else { return }
        self.pumpScheduled = true
        state.requestRound(for: self)
    }

    /// Called by the loop's publishing round.
    func roundPump() {
        self.pumpScheduled = false
        self.pump()
    }

    /// Writes as many messages as the window, the channel and (at a fixed rate) the clock allow, in batches
    /// of `--batch` packets with one flush each.
    private func pump() {
        guard let context, context.channel.isWritable, isPublishing else { return }
        if !canSend && !usesDeliveryWindow { return }
        let packetSize = configuration.payloadSize + 64 + template.topic.utf8.count
        var buffer = context.channel.allocator.buffer(capacity: configuration.batch * packetSize)
        var count = 0
        if configuration.rate == nil {
            let now = NIODeadline.now().uptimeNanoseconds
            self.refreshDeliveryWindow(now: now)
            while count < configuration.batch && canSend {
                self.writeMessage(into: &buffer, sentAt: now)
                count += 1
            }
            if count > 0 {
                context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
            }
            if !context.channel.isWritable {
                return  // channelWritabilityChanged pumps again.
            }
            if canSend {
                self.schedulePump()
            } else if isPublishing && !hasFinished && isBlockedByDeliveryWindow {
                self.parkOnDeliveryWindow()
            }
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        while canSend {
            let due = rateStart &+ UInt64(Double(sent) * rateInterval)
            if due > now {
                self.scheduleWakeUp(at: due)
                break
            }
            self.writeMessage(into: &buffer, sentAt: due)
            count += 1
            if count == configuration.batch {
                context.write(Self.wrapOutboundOut(buffer), promise: nil)
                buffer = context.channel.allocator.buffer(capacity: configuration.batch * packetSize)
                count = 0
            }
        }
        if count > 0 {
            context.write(Self.wrapOutboundOut(buffer), promise: nil)
        }
        context.flush()
    }

    private func writeMessage(into buffer: inout ByteBuffer, sentAt: UInt64) {
        if configuration.qos != .atMostOnce {
            template.packetIdentifier = nextPacketIdentifier
            nextPacketIdentifier = nextPacketIdentifier == .max ? 1 : nextPacketIdentifier + 1
            inflight += 1
        }
        do {
            try buffer.writeMQTTPublishHeader(template, payloadLength: configuration.payloadSize, version: configuration.version)
        } catch {
            state.noteError("\(clientIdentifier): cannot encode PUBLISH: \(error)")
            self.stopPublishing()
            return
        }
        buffer.writeInteger(publisherIndex)
        buffer.writeInteger(UInt64(sent))
        buffer.writeInteger(sentAt)
        buffer.writeRepeatingByte(0x2E, count: configuration.payloadSize - BenchConfiguration.stampSize)
        sent += 1
    }
}
