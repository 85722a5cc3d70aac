"""Freesound through its API: the rules every client shares (:mod:`.rules`), which search
results a class takes (:mod:`.admission`), the HTTP client (:mod:`.client`), the download run
(:mod:`.download`) and its command line (:mod:`.cli`, run as ``python -m
crawlers.freesound_api``). The Scrapy spider ``freesound`` uses the same rules and admission."""
