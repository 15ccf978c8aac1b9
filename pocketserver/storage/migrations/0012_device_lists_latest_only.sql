-- The "device_lists" stream keeps only the latest change of each user, and the latest observation
-- of each (observer, subject, kind): earlier rows tell a syncing client nothing the latest does
-- not (storage/e2ee_streams.py). Drop the ones kept before.
DELETE FROM device_list_changes WHERE position < (
    SELECT max(later.position) FROM device_list_changes AS later WHERE later.user_id = device_list_changes.user_id);
DELETE FROM device_list_observations WHERE position < (
    SELECT max(later.position) FROM device_list_observations AS later
    WHERE later.observer = device_list_observations.observer AND later.subject = device_list_observations.subject
      AND later.kind = device_list_observations.kind);
