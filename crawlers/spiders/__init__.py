"""The project's spiders (Scrapy's ``SPIDER_MODULES``): ``freesound``, ``freesound_pages`` and
``samplepack``; what they share is in :mod:`crawlers.spiders.base`."""
