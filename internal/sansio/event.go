package sansio

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds. The fields of Event that each kind uses are listed with it.
const (
	EventNone EventKind = iota
	// EventConnected: the handshake finished; Conn.Tuning and
	// Conn.ServerProperties are now valid.
	EventConnected
	// EventReply: the reply to the request Token on Channel. Method is the
	// reply (a copy the receiver owns); for basic.get-ok, Message holds the
	// message. Err is set instead when the request failed: its channel or
	// connection ended before the reply, or it could not be sent (a field
	// the codec cannot encode, a frame over frame_max).
	EventReply
	// EventDelivery: Message arrived for consumer Message.ConsumerTag.
	EventDelivery
	// EventReturn: the broker returned Message (basic.return). Seq is the
	// publish sequence number of the returned publish when the channel is in
	// confirm mode and the return could be paired with a mandatory publish,
	// otherwise 0; Ref is then the ref given to Publish. Its confirm follows
	// as an EventConfirm.
	EventReturn
	// EventConfirm: publish Seq on Channel has its outcome in Confirm; Ref
	// is the ref given to Publish for it.
	EventConfirm
	// EventConsumerCancelled: the broker cancelled consumer ConsumerTag
	// (a consumer cancel notification).
	EventConsumerCancelled
	// EventFlow: the broker paused (Active false) or resumed publishing
	// on Channel with channel.flow.
	EventFlow
	// EventBlocked: connection.blocked with Reason.
	EventBlocked
	// EventUnblocked: connection.unblocked.
	EventUnblocked
	// EventChannelClosed: Channel ended. Err says why: a *CloseError from
	// the broker, or nil when the client closed it.
	EventChannelClosed
	// EventConnectionClosed: the connection ended; Err says why (nil when the
	// client closed it and the broker confirmed). No events follow.
	EventConnectionClosed
)

var eventNames = [...]string{"none", "connected", "reply", "delivery", "return", "confirm",
	"consumer-cancelled", "flow", "blocked", "unblocked", "channel-closed", "connection-closed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event?"
}

// Confirm is the outcome of one publish on a channel in confirm mode.
type Confirm uint8

const (
	// ConfirmAck: the broker took responsibility for the message.
	ConfirmAck Confirm = iota + 1
	// ConfirmNack: the broker could not take the message.
	ConfirmNack
	// ConfirmFailed: the channel or connection ended before the broker said
	// either. The message may or may not have been routed.
	ConfirmFailed
)

func (c Confirm) String() string {
	switch c {
	case ConfirmAck:
		return "ack"
	case ConfirmNack:
		return "nack"
	case ConfirmFailed:
		return "failed"
	}
	return "confirm?"
}

// Message is a message the broker sent: a delivery, a get-ok or a return.
// Body is owned by the receiver of the event.
type Message struct {
	ConsumerTag  string // deliveries
	DeliveryTag  uint64 // deliveries and get-ok
	Redelivered  bool   // deliveries and get-ok
	MessageCount uint32 // get-ok: messages left in the queue
	ReplyCode    ReplyCode
	ReplyText    string // returns
	Exchange     string
	RoutingKey   string
	Properties   Properties
	Body         []byte
}

// Event is one thing that happened on the connection. Which fields are set
// depends on Kind (see the EventKind constants). An Event owns everything it
// refers to: nothing in it is overwritten by later calls to the Conn.
type Event struct {
	Kind        EventKind
	Channel     uint16
	Token       uint64
	Method      Method
	Message     Message
	Seq         uint64
	Ref         any // the driver's, given to Publish
	Confirm     Confirm
	ConsumerTag string
	Active      bool
	Reason      string
	Err         error
}
