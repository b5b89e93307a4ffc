# Common tasks. `make test` is what CI runs; it installs its own dependencies (as root) first.
CARGO ?= cargo
# Where `make run` (the demo) listens; port 0 picks a free port, which the banner prints.
LISTEN ?= 127.0.0.1:9877

.PHONY: run demo test test-deps lint fmt clippy doc shape unit bench check-config clean

## run: build in release mode and start the demo (simulator + exporter + rule engine) on $(LISTEN)
##      (default 127.0.0.1:9877; e.g. `make run LISTEN=127.0.0.1:9977`)
run demo:
	$(CARGO) run --release -- demo --listen $(LISTEN)

## test: formatting, lints, docs, every test against real Prometheus, promtool and SMTP servers, and the shape check
test: test-deps fmt clippy doc unit shape

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

## shape: no import loop among the top-level modules of src/, no file over 800 lines before its tests (and the
## check's own tests)
shape:
	PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s scripts -p 'test_*.py'
	python3 scripts/check_shape.py src

lint: fmt clippy doc shape

## bench: scale figures at 1k, 10k and 100k agents, 64 concurrent scrapers at 10k, and evaluation time and silence
## API latency at 10k and 100k agents, /api/v1/agents readers and a wrong-password flood (see BENCHMARKS.md)
bench:
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench scale
	$(CARGO) bench --locked --bench scrapers
	$(CARGO) bench --locked --bench alerting
	$(CARGO) bench --locked --bench web

## check-config: validate examples/config.yaml with the release build `make run` already compiled
check-config:
	$(CARGO) run --release --quiet -- check-config examples/config.yaml

clean:
	$(CARGO) clean
