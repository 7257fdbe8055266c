"""Sources: where log objects come from, each kind behind ``base.Source`` with its own cursor."""
