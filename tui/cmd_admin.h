/*  cmd_admin.h: queues, rooms, threads, sockets, release, reload, watch.  */
#ifndef DG_CMD_ADMIN_H
#define DG_CMD_ADMIN_H

int dg_cmd_queues(int argc, char *argv[]);
int dg_cmd_rooms(int argc, char *argv[]);
int dg_cmd_threads(int argc, char *argv[]);
int dg_cmd_sockets(int argc, char *argv[]);
int dg_cmd_release(int argc, char *argv[]);
int dg_cmd_reload(int argc, char *argv[]);
int dg_cmd_watch(int argc, char *argv[]);

#endif
