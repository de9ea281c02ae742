# Two entry points do all set-up on a fresh machine:
#   make book   build the HTML site into _build/html
#   make test   run the whole test suite (unit, book build and browser tests)
# Set R2SKA_DATA_MIRROR to a folder with the course data to work offline.

PYTHON ?= python3
VENV ?= .venv
# The exact torch pair the book is built with; override on other platforms,
# e.g. `make book TORCH_PINS="torch torchvision"`.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
# The stamp names the torch pins, so a different TORCH_PINS reinstalls.
STAMP := $(VENV)/.r2ska-installed-$(shell echo '$(TORCH_PINS)' | cksum | cut -d' ' -f1)

.PHONY: book test browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[book,geo,lora,test]'
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/python -m r2ska.book build .

# Browser tests use the system Chromium; install it when we are allowed to.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "chromium not found: browser tests will be skipped (apt-get install chromium)"; \
	  fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest

clean:
	rm -rf _build
