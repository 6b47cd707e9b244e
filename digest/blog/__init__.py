"""The blog: a day rendered to its post and read back from one (``render``, ``post_parser``),
the day files and posts on disk with the lock (``store``), the JSON Schemas, and the Jekyll
site ``digest init`` writes (``init_blog``, its ``template/``; ``site_config`` merges what it
needs into a site's ``_config.yml``, ``confined`` keeps every write inside the blog).

Imports the base modules only: how a post looks never depends on how it was made.
"""
