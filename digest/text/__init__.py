"""Text: a PDF's bytes to the text the LLM reads (``extract``), and whether that text is the
paper's at all (``identity``).

Imports the base modules only (``digest.errors``, ``digest.models`` and the like): reading a
PDF knows nothing of where it came from or what is done with its text.
"""
