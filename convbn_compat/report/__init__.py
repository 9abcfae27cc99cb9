"""The report: a model of many results files (``model``), its renderers (``markdown``,
``html`` with ``static/``), and the command that writes them (``write``). Imports only
``core``: a report never needs torch, nor any measuring tool."""
