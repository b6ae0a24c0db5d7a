import { MailDev } from 'maildev';

// `npm start`'s local mail catcher: maildev's SMTP server takes every email the platform sends and
// its web UI shows them, so a developer sees campaigns arrive without any mail leaving the machine.
// It runs inside `npm start`'s own process and so ends with it, whatever way that ends.

export interface MailCatcher {
  smtpUrl: string;
  webUrl: string;
  stop(): Promise<void>;
}

export async function startMailCatcher(opts: { smtpPort: number; webPort: number; mailDir: string; maxEmails: number }): Promise<MailCatcher> {
  const maildev = new MailDev({
    smtp: opts.smtpPort,
    ip: '127.0.0.1',
    web: opts.webPort,
    webIp: '127.0.0.1',
    mailDirectory: opts.mailDir, // kept across restarts, the newest maxEmails of them
    maxEmails: opts.maxEmails,
    silent: true,
  });
  let servers;
  try {
    servers = await maildev.start();
  } catch (err) {
    await maildev.stop().catch(() => undefined);
    throw new Error(`the mail catcher could not start (MAILDEV_SMTP_PORT ${opts.smtpPort}, MAILDEV_WEB_PORT ${opts.webPort}): ${(err as Error).message}`);
  }
  const smtp = servers.smtp.getAddress();
  const web = servers.api!.getAddress()!;
  return {
    smtpUrl: `smtp://${smtp.host}:${smtp.port}`,
    webUrl: `http://${web.host}:${web.port}`,
    stop: () => maildev.stop(),
  };
}
