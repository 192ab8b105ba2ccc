"""Payment rules as plain functions: amounts, ids, how a provider result settles a payment."""
