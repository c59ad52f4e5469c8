"""At the register and the guest-services desk: find a member, correct their data, see and end
API keys (adjustments and merges are postings: `rewards.engine`). `rewards.desk.api` holds the
routes; docs/desk.md describes them for the people who use them."""
