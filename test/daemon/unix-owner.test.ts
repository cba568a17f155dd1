// --unix-owner: numbers taken as they are, names looked up with getent (the
// system's name service, so users that are not in /etc/passwd count too),
// one line naming the option when a name is unknown or the lookup fails.

import t from 'tap'
import { type Getent, resolveOwner, systemGetent } from '../../src/daemon/unix-owner.js'

const OPT = '--unix-owner'

t.test('numeric ids: taken as they are, without a lookup', async (t) => {
  const never: Getent = (db, key) => {
    throw new Error(`looked up ${db} ${key}`)
  }
  t.same(resolveOwner(OPT, '0:0', never), { uid: 0, gid: 0 })
  t.same(resolveOwner(OPT, '1000:1001', never), { uid: 1000, gid: 1001 })
  t.same(resolveOwner(OPT, ' 1000:1001 ', never), { uid: 1000, gid: 1001 }, 'surrounding blanks')
  t.throws(() => resolveOwner(OPT, '1000', never), { message: '--unix-owner: a numeric user needs a group: 1000:GROUP' })
})

t.test('names, through the system getent', async (t) => {
  t.same(resolveOwner(OPT, 'root'), { uid: 0, gid: 0 }, "a name brings its primary group")
  t.same(resolveOwner(OPT, 'root:root'), { uid: 0, gid: 0 })
  t.same(resolveOwner(OPT, '0:root'), { uid: 0, gid: 0 }, 'a numeric user and a group name')
  t.same(resolveOwner(OPT, 'root:12345'), { uid: 0, gid: 12345 }, 'a name and a numeric group')
  t.throws(() => resolveOwner(OPT, 'no-such-user-x'), { message: '--unix-owner: unknown user "no-such-user-x"' })
  t.throws(() => resolveOwner(OPT, 'root:no-such-group-x'), { message: '--unix-owner: unknown group "no-such-group-x"' })
  t.throws(() => resolveOwner(OPT, ':root'), { message: '--unix-owner: unknown user ""' }, 'no user')
  t.equal(systemGetent('passwd', 'no-such-user-x'), null, 'getent: no such key')
  t.same(systemGetent('group', 'root')?.slice(0, 3), ['root', 'x', '0'])
})

t.test('whatever the name service answers counts (a user only LDAP knows)', async (t) => {
  const asked: string[] = []
  const ldap: Getent = (db, key) => {
    asked.push(`${db} ${key}`)
    if (db === 'passwd' && key === 'svc-edge') return ['svc-edge', '*', '5001', '5002', 'edge', '/', '/bin/false']
    if (db === 'group' && key === 'proxies') return ['proxies', '*', '6000', 'svc-edge']
    return null
  }
  t.same(resolveOwner(OPT, 'svc-edge', ldap), { uid: 5001, gid: 5002 })
  t.same(resolveOwner(OPT, 'svc-edge:proxies', ldap), { uid: 5001, gid: 6000 })
  t.same(asked, ['passwd svc-edge', 'passwd svc-edge', 'group proxies'])
  const broken: Getent = () => ['svc-edge', '*', 'not-a-number']
  t.throws(() => resolveOwner(OPT, 'svc-edge', broken), { message: '--unix-owner: unknown user "svc-edge"' }, 'an entry without ids')
})

t.test('a lookup that cannot be made: one line naming the option', async (t) => {
  const failing: Getent = () => {
    throw new Error('getent gave no answer within 5 s')
  }
  t.throws(() => resolveOwner(OPT, 'haproxy', failing), { message: '--unix-owner: cannot look up user "haproxy": getent gave no answer within 5 s' })
  t.throws(() => resolveOwner(OPT, '0:haproxy', failing), { message: '--unix-owner: cannot look up group "haproxy": getent gave no answer within 5 s' })

  const path = process.env.PATH
  t.teardown(() => {
    process.env.PATH = path
  })
  process.env.PATH = '/nonexistent'
  t.throws(() => resolveOwner(OPT, 'root'), { message: '--unix-owner: cannot look up user "root": getent is not installed (numeric ids need no lookup)' })
  t.same(resolveOwner(OPT, '0:0'), { uid: 0, gid: 0 }, 'numbers still work')
})
