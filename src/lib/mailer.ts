/** @module Outgoing mail over SMTP (nodemailer); with no SMTP configured, messages go to the log. */
import { isIP } from 'node:net'
import nodemailer from 'nodemailer'
import type { Logger } from './logger.ts'

export interface Mail {
  to: string
  subject: string
  text: string
  html: string
  /** logged instead of the body when there is no SMTP server (e.g. the code) */
  logFields?: Record<string, unknown>
}

export interface Mailer {
  send(mail: Mail): Promise<void>
}

export function createMailer(deps: { smtpUrl: string | undefined; from?: string; logger: Logger }): Mailer {
  const { smtpUrl, logger } = deps
  if (!smtpUrl) {
    return {
      async send(mail) {
        logger.info('mail not sent: HEARTH_SMTP_URL is not set', { to: mail.to, subject: mail.subject, ...mail.logFields })
      },
    }
  }
  const transport = nodemailer.createTransport(smtpUrl)
  const host = new URL(smtpUrl).hostname
  // an IP or a bare host name is no mail domain
  const from = deps.from ?? `Hearth <no-reply@${host.includes('.') && !isIP(host) ? host : 'hearth.localhost'}>`
  return {
    async send(mail) {
      await transport.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html })
    },
  }
}
