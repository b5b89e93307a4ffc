# Common tasks. `make test` is what CI runs; it installs its own dependencies (as root) first.
CARGO ?= cargo

.PHONY: run demo test test-deps lint fmt clippy doc unit bench check-config clean

## run: build in release mode and start the demo (simulator + exporter + rule engine) on 127.0.0.1:9877
run demo:
	$(CARGO) run --release -- demo

## test: formatting, lints, docs, and every test against real Prometheus, promtool and SMTP servers
test: test-deps fmt clippy doc unit

test-deps:
	bash scripts/install-test-deps.sh

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --locked

unit:
	$(CARGO) test --locked

lint: fmt clippy doc

## bench: scale figures, 64 concurrent scrapers at 10k, /api/v1/agents readers and a wrong-password flood (see BENCHMARKS.md)
bench:
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench scale
	$(CARGO) bench --locked --bench scrapers
	$(CARGO) bench --locked --bench web

## check-config: validate examples/config.yaml with the release build `make run` already compiled
check-config:
	$(CARGO) run --release --quiet -- check-config examples/config.yaml

clean:
	$(CARGO) clean
