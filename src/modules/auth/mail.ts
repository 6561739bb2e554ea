/** @module The code mail, in the user's language (zh or en), as plain text and HTML. */
import type { CodeType } from './codes.ts'

const TEXT = {
  en: {
    register: { subject: 'Your Hearth sign-up code', intro: 'Use this code to finish creating your account:' },
    password_reset: { subject: 'Your Hearth password reset code', intro: 'Use this code to reset your password:' },
    expires: (m: number) => `It expires in ${m} minutes. If you did not ask for it, ignore this mail.`,
  },
  zh: {
    register: { subject: 'Hearth 注册验证码', intro: '请使用以下验证码完成注册：' },
    password_reset: { subject: 'Hearth 重置密码验证码', intro: '请使用以下验证码重置密码：' },
    expires: (m: number) => `验证码 ${m} 分钟内有效。如果这不是您本人的操作，请忽略此邮件。`,
  },
}

export function codeMail(language: 'zh' | 'en', type: CodeType, code: string, expireMinutes: number) {
  const l = TEXT[language]
  const { subject, intro } = l[type]
  const expires = l.expires(expireMinutes)
  return {
    subject,
    text: `${intro}\n\n${code}\n\n${expires}\n`,
    html: `<!doctype html><html lang="${language}"><body style="font-family:sans-serif"><p>${intro}</p><p style="font-size:28px;letter-spacing:6px;font-weight:bold">${code}</p><p style="color:#666">${expires}</p></body></html>`,
  }
}
