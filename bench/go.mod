module github.com/amqproto/amqproto/bench

go 1.26.0

require (
	github.com/amqproto/amqproto v0.0.0
	github.com/rabbitmq/amqp091-go v1.16.0
)

replace github.com/amqproto/amqproto => ../
