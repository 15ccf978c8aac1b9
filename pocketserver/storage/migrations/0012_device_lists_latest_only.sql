-- The "device_lists" stream keeps only the latest change of each user, and the latest observation
-- of each (observer, subject, kind): earlier rows tell a syncing client nothing the latest does
-- not (storage/e2ee_streams.py). Drop the ones kept before (rows were inserted in position order,
-- so the highest rowid of a group is its latest), then let a unique index hold each group to one
-- row, which later writes replace.
DELETE FROM device_list_changes
WHERE rowid NOT IN (SELECT max(rowid) FROM device_list_changes GROUP BY user_id);
DELETE FROM device_list_observations
WHERE rowid NOT IN (SELECT max(rowid) FROM device_list_observations GROUP BY observer, subject, kind);
DROP INDEX device_list_changes_user;
CREATE UNIQUE INDEX device_list_changes_user ON device_list_changes (user_id);
CREATE UNIQUE INDEX device_list_observations_pair ON device_list_observations (observer, subject, kind);
