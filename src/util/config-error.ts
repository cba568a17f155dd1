// A bad configuration value: names the option (flag, variable or file key)
// and what it accepts, so the daemon can refuse to start with one clear line.

export class ConfigError extends Error {
  readonly option: string

  constructor(option: string, message: string) {
    super(`${option}: ${message}`)
    this.name = 'ConfigError'
    this.option = option
  }
}
