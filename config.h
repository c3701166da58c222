/* Written by configure. */
#define KL_VERSION "0.1"
#define KL_SYSCONFDIR "/usr/local/etc"
#define KL_LOCALSTATEDIR "/usr/local/var"
#define KL_RUNSTATEDIR "/run"
#define KL_DEFAULT_QEMU "/usr/bin/qemu-system-x86_64"
#define KL_DEFAULT_CONFIG "/usr/local/etc/kvm-launch/kvm-launch.conf"
#define KL_DEFAULT_STATE_DIR "/run/kvm-launch"
#define KL_DEFAULT_CACHE_DIR "/usr/local/var/cache/kvm-launch"
