# `make demo` and `make test` do all set-up on a fresh machine: they create .venv
# when it is missing and (re)install the package when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install clean chromium bible espeak flite festival real-speech other-speech

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP) bible espeak flite
	$(BIN)/lstmlab demo

test: $(STAMP) chromium bible espeak flite festival
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP) chromium bible espeak flite festival
	$(BIN)/python -m pytest -q

# The inspect report's test opens the page in a real headless browser (Debian's chromium).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (needed by the browser test in tests/test_inspect_report.py)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

# Install Debian packages $(2) for make target $@ unless the shell test $(1) passes; $(3) says
# what they are for (no commas).
define apt_install
@$(1) || { \
  echo "installing Debian's $(2) ($(3))"; \
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null 2>&1 || \
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null; }; } || \
  { echo "make $@: could not install $(2) (apt-get install $(2))" >&2; exit 1; }; }
endef

# The speech recipe synthesises its training speech with Debian's espeak-ng.
espeak:
	$(call apt_install,command -v espeak-ng >/dev/null 2>&1,espeak-ng,the speech recipe's synthesised speech)

# A second synthesiser, Debian's flite: the held-out synthesiser test set and --flite_voices.
flite:
	$(call apt_install,command -v flite >/dev/null 2>&1,flite,a second synthesiser for the speech recipe)

# A third synthesiser, Festival with three English voices: a test set never trained on.
FESTIVAL_VOICES := /usr/share/festival/voices/english/kal_diphone /usr/share/festival/voices/english/ked_diphone \
  /usr/share/festival/voices/us/cmu_us_slt_arctic_hts
festival:
	$(call apt_install,{ command -v text2wave && ls -d $(FESTIVAL_VOICES); } >/dev/null 2>&1,festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts,a third synthesiser for the speech recipe's test sets)

# The speech recipe's 400 test sentences spoken by flite's five voices and Festival's three
# (synthesisers the espeak-ng test voices never come from):
# lstmlab evaluate RUN --data ~/.cache/lstmlab/flite/flite.tsv (or festival/festival.tsv)
OTHER_SPEECH := $(HOME)/.cache/lstmlab
other-speech: $(STAMP) flite festival
	@test -f $(OTHER_SPEECH)/flite/flite.tsv || \
	  $(BIN)/python -m lstmlab.recipes.speech.other_speech --synthesiser flite --out $(OTHER_SPEECH)/flite
	@test -f $(OTHER_SPEECH)/festival/festival.tsv || \
	  $(BIN)/python -m lstmlab.recipes.speech.other_speech --synthesiser festival --out $(OTHER_SPEECH)/festival

# Real recorded speech to score a speech run on (not used in training): Debian's
# pocketsphinx-testdata (5 LibriVox sentences, 5 card names), unpacked into
# ~/.cache/lstmlab/pocketsphinx with a manifest: lstmlab evaluate RUN --data $(REAL_SPEECH)/real.tsv
REAL_SPEECH := $(HOME)/.cache/lstmlab/pocketsphinx
real-speech:
	@test -f $(REAL_SPEECH)/real.tsv || { \
	  work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && cd "$$work" && \
	  { apt-get download -q pocketsphinx-testdata >apt.log 2>&1 || \
	    { apt-get update -q >>apt.log 2>&1 && apt-get download -q pocketsphinx-testdata >>apt.log 2>&1; } || \
	    { cat apt.log >&2; echo "make real-speech: could not download pocketsphinx-testdata" >&2; exit 1; }; } && \
	  dpkg -x pocketsphinx-testdata_*.deb unpacked && mkdir -p $(REAL_SPEECH) && \
	  cp -r unpacked/usr/share/pocketsphinx/test/data/librivox unpacked/usr/share/pocketsphinx/test/data/cards $(REAL_SPEECH)/ && \
	  { sed -E 's|^<s> (.*) </s> \((.*)\)$$|librivox/\2.wav\t\1|' $(REAL_SPEECH)/librivox/transcription; \
	    sed -E 's|^<s> (.*[^ ]) *</s> \((.*)\)$$|cards/\2.wav\t\1|' $(REAL_SPEECH)/cards/cards.transcription; } \
	    > $(REAL_SPEECH)/real.tsv.tmp && mv $(REAL_SPEECH)/real.tsv.tmp $(REAL_SPEECH)/real.tsv && \
	  echo "wrote $(REAL_SPEECH)/real.tsv (10 recorded utterances)"; }

# The translation recipe's bundled parallel text: Debian's King James and Reina-Valera 1909
# SWORD modules, downloaded as packages and unpacked into ~/.cache/lstmlab/sword (nothing is
# installed; `apt-get install sword-text-kjv sword-text-sparv` works too). apt's package lists
# are refreshed only when the download cannot find the packages.
SWORD := $(HOME)/.cache/lstmlab/sword
BIBLE_DEBS := sword-text-kjv sword-text-sparv
bible:
	@test -f $(SWORD)/mods.d/engKJV2006eb.conf -a -f $(SWORD)/mods.d/spaRV1909eb.conf || { \
	  echo "downloading Debian's $(BIBLE_DEBS) (the translation recipe's verses) into $(SWORD)"; \
	  work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && cd "$$work" && \
	  { apt-get download -q $(BIBLE_DEBS) >apt.log 2>&1 || \
	    { apt-get update -q >>apt.log 2>&1 && apt-get download -q $(BIBLE_DEBS) >>apt.log 2>&1; } || \
	    { cat apt.log >&2; echo "make bible: could not download $(BIBLE_DEBS) (see above)" >&2; exit 1; }; } && \
	  for deb in *.deb; do dpkg -x "$$deb" unpacked || exit 1; done && \
	  mkdir -p $(SWORD) && cp -r unpacked/usr/share/sword/. $(SWORD)/; }

clean:
	rm -rf $(VENV) build src/*.egg-info
