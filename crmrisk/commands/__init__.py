"""One module per command group of the ``crmrisk`` CLI; ``crmrisk.cli`` wires them together."""
