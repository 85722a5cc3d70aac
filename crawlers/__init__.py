"""Acquisition: the Freesound API client, the Scrapy project and the safe raw-file store."""
