"""The financial-incentive disclosures: valuation reports, the notice text, renderers."""
