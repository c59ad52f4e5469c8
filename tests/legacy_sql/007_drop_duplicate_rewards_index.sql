-- rewards_member (member_id, ordinal) repeats the index behind UNIQUE (member_id, ordinal):
-- every reward issued paid for maintaining both.
DROP INDEX rewards_member;
