"""Sources: where papers come from. What a user may type (an arXiv ID or URL, a local PDF)
and a day's list (Hugging Face Daily Papers, an arXiv query) in ``papers``; arXiv's metadata
and the PDFs in ``fetch``.

Imports the base modules and ``digest.text`` (a download is checked to be a PDF), nothing
above: a source hands on papers and never digests them.
"""
