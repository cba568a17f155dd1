// Whether a file the agent will write (log, spans, pidfile) can be written,
// checked without creating anything, and file-system errors in words an
// operator reads at a glance instead of errno names and stack traces.

import { accessSync, constants, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

/** Why `path` cannot be opened for writing, from the error the attempt gave. */
export function describeFsError(err: unknown, path: string): string {
  const e = err as NodeJS.ErrnoException
  switch (e.code) {
    case 'ENOENT':
      return `directory ${dirname(resolve(path))} does not exist`
    case 'ENOTDIR':
      return `a component of ${path} is not a directory`
    case 'EISDIR':
      return `${path} is a directory`
    case 'EACCES':
    case 'EPERM':
      return `permission denied`
    case 'EROFS':
      return `read-only file system`
    case 'ENOSPC':
      return `no space left on the device`
    default:
      return e.code ? `${e.code}` : String((e as Error).message ?? e)
  }
}

/**
 * null if `path` can be opened for writing (appending), else why not. Creates
 * nothing: an existing file must be a writable non-directory, a missing one
 * needs a writable directory to be created in.
 */
export function writableFileProblem(path: string): string | null {
  try {
    const st = statSync(path)
    if (st.isDirectory()) return `${path} is a directory`
    accessSync(path, constants.W_OK)
    return null
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return describeFsError(err, path)
  }
  return writableDirProblem(dirname(resolve(path)))
}

/** null if files can be created (and removed) in directory `dir`, else why not. */
export function writableDirProblem(dir: string): string | null {
  try {
    if (!statSync(dir).isDirectory()) return `${dir} is not a directory`
    accessSync(dir, constants.W_OK | constants.X_OK)
    return null
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return `directory ${dir} does not exist`
    if (code === 'ENOTDIR') return `${dir} is not a directory`
    return `${describeFsError(err, dir)} in ${dir}`
  }
}
