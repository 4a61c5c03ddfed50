# Set-up and test entry points; the README's commands call these.
PYTHON ?= python3

.PHONY: install install-test test demo

# constraints.txt pins every package to the set the tests passed with (scripts/lock.py writes it).
install:
	$(PYTHON) -m pip install -c constraints.txt -e .

# torchcodec (Audio decoding in `datasets`) needs FFmpeg's shared libraries; the report test opens
# its page in Debian's Chromium (Playwright drives it; its own browser download is not used).
install-test:
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; \
	  else echo "install FFmpeg (e.g. sudo apt-get install ffmpeg), then rerun"; exit 1; fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Chromium (e.g. sudo apt-get install chromium), then rerun"; exit 1; fi; }
	$(PYTHON) -m pip install -c constraints.txt -e ".[test]"

test: install-test
	$(PYTHON) -m pytest

demo: install
	echoforge build --output demo-corpus
