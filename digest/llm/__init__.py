"""The LLM: the prompts, the server, the conversation that asks and asks again until an
answer passes its checks, the digest's checks (grounding), the ranking of a day's candidates
against the reader's interests (``rank``), and the Batch API transport.

Imports the base modules only. It knows papers by their text (``PaperText``), never where
they came from or how a day is written.
"""
