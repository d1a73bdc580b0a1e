-- Take over a poll whose holder died: its lock expired while its "running" mark stayed.
--
-- KEYS[1]  poll:running  (string) task id of the poll that took the lock; deleted at release
-- KEYS[2]  poll:lock     (string) the redis-py lock, heartbeated while its holder lives
-- KEYS[3]  poll:retry    (string) task id of the queued poll retry
--
-- A living poll holds the lock whenever its mark exists (it takes the lock first and releases
-- it last), so a mark without a lock means its holder is gone. The mark is deleted here (one
-- caller wins) and so is the retry marker if it names the dead poll, which no worker will run
-- now: the caller queues a fresh poll, which resumes from the saved cursor.
--
-- Returns the dead poll's task id, or false when no poll is orphaned.

local running = redis.call('GET', KEYS[1])
if not running or redis.call('EXISTS', KEYS[2]) == 1 then
  return false
end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[3]) == running then
  redis.call('DEL', KEYS[3])
end
return running
