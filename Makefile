# amqproto: build, test and demo helpers.
#
# `make test` starts a private RabbitMQ node and a 3-node cluster
# (scripts/rabbitmq.sh; Debian's rabbitmq-server, installed with apt-get when
# missing) and runs the whole test suite against them. They stay up
# afterwards; `make broker-down` and `make cluster-down` stop them.

GO ?= go
SHELL := /bin/bash
RABBITMQ := scripts/rabbitmq.sh
# staticcheck, pinned; run through the module proxy, not a tool line in go.mod.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# CI is passed through to the tests when it is set (environment or command line).
ifdef CI
export CI
endif

.PHONY: all broker broker-down broker-status cluster cluster-down cluster-status test stress demo bench fmt vet staticcheck

all: vet test

broker:
	$(RABBITMQ) up

broker-down:
	$(RABBITMQ) down

broker-status:
	$(RABBITMQ) status

# Three clustered nodes rabbit1..3@localhost on ports 5673-5675, for the
# recovery and failover tests (internal/clustertest).
cluster:
	$(RABBITMQ) cluster-up

cluster-down:
	$(RABBITMQ) cluster-down

cluster-status:
	$(RABBITMQ) cluster-status

# otelamqp/ is a module of its own (so the library's go.mod gains no
# OpenTelemetry dependency), which ./... does not reach: it runs after.
# -p 1: tests/ raises memory alarms and closes every connection on the shared
# broker (TestBrokerWide), which must not overlap other packages' tests.
# The cluster starts after the single node (in the recipe, so that even
# `make -j` keeps the order): they boot on the same CPUs, and their
# installs must not race.
test: staticcheck broker
	$(RABBITMQ) cluster-up
	@set -e; eval "$$($(RABBITMQ) env)"; eval "$$($(RABBITMQ) cluster-env)"; \
	echo "$(GO) test -race -count=1 -p 1 -timeout 15m ./... (AMQP_URL=$$AMQP_URL AMQP_CLUSTER_URLS=$$AMQP_CLUSTER_URLS CI=$${CI:-})"; \
	$(GO) test -race -count=1 -p 1 -timeout 15m ./...; \
	echo "(cd otelamqp && $(GO) test -race -count=1 -timeout 5m ./...)"; \
	cd otelamqp && $(GO) test -race -count=1 -timeout 5m ./...

# stress runs the tests of the race between a publish and its channel's end
# for 1,000 rounds under the race detector (200 in make test). It needs no
# broker and takes a few minutes.
STRESS_TESTS := TestOutcomesSeeEveryAcceptedPublishWhenTheChannelEnds
stress:
	$(GO) test -race -count=1 -timeout 60m -run '^($(STRESS_TESTS))$$' ./internal/actor -args -stress-rounds=1000

demo: broker
	@set -e; eval "$$($(RABBITMQ) env)"; \
	set -x; \
	$(GO) run ./cmd/amqpsend --queue hello --declare "Hello from amqproto"; \
	amqp-get -u 'amqp://guest:guest@127.0.0.1:5672/%2f' -q hello

# bench compares this client with rabbitmq/amqp091-go (bench/ is a module of
# its own, so the library never depends on amqp091-go), e.g.
# make bench BENCHFLAGS='-only a,b -scale 0.1 -json /tmp/bench.json'
bench: broker
	cd bench && $(GO) run . $(BENCHFLAGS)

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

# The second run leaves the tests out, so that code only tests use is
# reported as unused.
staticcheck:
	@unformatted="$$(gofmt -l . )"; if [ -n "$$unformatted" ]; then echo "gofmt -l:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tests=false ./...
